"use strict";(self.rspackChunkworkshop_help=self.rspackChunkworkshop_help||[]).push([[266],{646(e,r,t){var o=t(601),n=t.n(o),a=t(314),i=(t.n(a))()(n());i.push([e.id,`/* The help panel: JupyterLab's own colours, so it follows the light and dark themes. */
.wh-panel {
  padding: 8px 12px;
  overflow-y: auto;
  background: var(--jp-layout-color1);
  color: var(--jp-ui-font-color1);
  font-size: var(--jp-ui-font-size1);
}

.wh-title {
  font-size: var(--jp-ui-font-size2);
  margin: 12px 0 6px;
}

.wh-note {
  box-sizing: border-box;
  width: 100%;
  margin-bottom: 6px;
}

.wh-buttons {
  display: flex;
  flex-wrap: wrap;
  gap: 4px;
}

.wh-message {
  color: var(--jp-error-color1);
}

.wh-row {
  display: flex;
  flex-wrap: wrap;
  align-items: center;
  gap: 3px;
  margin: 3px 0;
}

.wh-lab {
  width: 3.5em;
}

.wh-cell {
  width: 18px;
  height: 18px;
  padding: 0;
  border: 1px solid var(--jp-border-color1);
  border-radius: 3px;
  cursor: pointer;
  font-size: 11px;
  line-height: 1;
}

.wh-untried {
  background: var(--jp-layout-color2);
}

.wh-passed {
  background: var(--jp-success-color1);
  color: white;
}

.wh-failing {
  background: var(--jp-error-color1);
}
`,""]),t.d(r,{},{A:i})},314(e){e.exports=function(e){var r=[];return r.toString=function(){return this.map(function(r){var t="",o=void 0!==r[5];return r[4]&&(t+="@supports (".concat(r[4],") {")),r[2]&&(t+="@media ".concat(r[2]," {")),o&&(t+="@layer".concat(r[5].length>0?" ".concat(r[5]):""," {")),t+=e(r),o&&(t+="}"),r[2]&&(t+="}"),r[4]&&(t+="}"),t}).join("")},r.i=function(e,t,o,n,a){"string"==typeof e&&(e=[[null,e,void 0]]);var i={};if(o)for(var s=0;s<this.length;s++){var c=this[s][0];null!=c&&(i[c]=!0)}for(var p=0;p<e.length;p++){var l=[].concat(e[p]);o&&i[l[0]]||(void 0!==a&&(void 0===l[5]||(l[1]="@layer".concat(l[5].length>0?" ".concat(l[5]):""," {").concat(l[1],"}")),l[5]=a),t&&(l[2]&&(l[1]="@media ".concat(l[2]," {").concat(l[1],"}")),l[2]=t),n&&(l[4]?(l[1]="@supports (".concat(l[4],") {").concat(l[1],"}"),l[4]=n):l[4]="".concat(n)),r.push(l))}},r}},601(e){e.exports=function(e){return e[1]}},665(e,r,t){t.r(r);var o=t(72),n=t.n(o),a=t(825),i=t.n(a),s=t(659),c=t.n(s),p=t(56),l=t.n(p),u=t(540),d=t.n(u),f=t(113),h=t.n(f),v=t(646),m={};m.styleTagTransform=h(),m.setAttributes=l(),m.insert=c().bind(null,"head"),m.domAPI=i(),m.insertStyleElement=d(),n()(v.A,m);let g=v.A&&v.A.locals?v.A.locals:void 0;t.d(r,{},{default:g})},72(e){var r=[];function t(e){for(var t=-1,o=0;o<r.length;o++)if(r[o].identifier===e){t=o;break}return t}function o(e,o){for(var n={},a=[],i=0;i<e.length;i++){var s=e[i],c=o.base?s[0]+o.base:s[0],p=n[c]||0,l="".concat(c," ").concat(p);n[c]=p+1;var u=t(l),d={css:s[1],media:s[2],sourceMap:s[3],supports:s[4],layer:s[5]};if(-1!==u)r[u].references++,r[u].updater(d);else{var f=function(e,r){var t=r.domAPI(r);return t.update(e),function(r){r?(r.css!==e.css||r.media!==e.media||r.sourceMap!==e.sourceMap||r.supports!==e.supports||r.layer!==e.layer)&&t.update(e=r):t.remove()}}(d,o);o.byIndex=i,r.splice(i,0,{identifier:l,updater:f,references:1})}a.push(l)}return a}e.exports=function(e,n){var a=o(e=e||[],n=n||{});return function(e){e=e||[];for(var i=0;i<a.length;i++){var s=t(a[i]);r[s].references--}for(var c=o(e,n),p=0;p<a.length;p++){var l=t(a[p]);0===r[l].references&&(r[l].updater(),r.splice(l,1))}a=c}}},659(e){var r={};e.exports=function(e,t){var o=function(e){if(void 0===r[e]){var t=document.querySelector(e);if(window.HTMLIFrameElement&&t instanceof window.HTMLIFrameElement)try{t=t.contentDocument.head}catch(e){t=null}r[e]=t}return r[e]}(e);if(!o)throw Error("Couldn't find a style target. This probably means that the value for the 'insert' parameter is invalid.");o.appendChild(t)}},540(e){e.exports=function(e){var r=document.createElement("style");return e.setAttributes(r,e.attributes),e.insert(r,e.options),r}},56(e,r,t){e.exports=function(e){var r=t.nc;r&&e.setAttribute("nonce",r)}},825(e){e.exports=function(e){if("u"<typeof document)return{update:function(){},remove:function(){}};var r=e.insertStyleElement(e);return{update:function(t){var o,n,a;o="",t.supports&&(o+="@supports (".concat(t.supports,") {")),t.media&&(o+="@media ".concat(t.media," {")),(n=void 0!==t.layer)&&(o+="@layer".concat(t.layer.length>0?" ".concat(t.layer):""," {")),o+=t.css,n&&(o+="}"),t.media&&(o+="}"),t.supports&&(o+="}"),(a=t.sourceMap)&&"u">typeof btoa&&(o+="\n/*# sourceMappingURL=data:application/json;base64,".concat(btoa(unescape(encodeURIComponent(JSON.stringify(a))))," */")),e.styleTagTransform(o,r,e.options)},remove:function(){var e;null===(e=r).parentNode||e.parentNode.removeChild(e)}}}},113(e){e.exports=function(e,r){if(r.styleSheet)r.styleSheet.cssText=e;else{for(;r.firstChild;)r.removeChild(r.firstChild);r.appendChild(document.createTextNode(e))}}}}]);