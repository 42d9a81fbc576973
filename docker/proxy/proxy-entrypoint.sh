#!/bin/sh
# Renders Caddy's configuration from the environment (set in .env, passed by compose) and
# runs Caddy as the unprivileged caddy user. Two ways to serve HTTPS:
#   WORKSHOP_DOMAIN                      certificates from an ACME CA (Let's Encrypt), renewed
#   WORKSHOP_TLS_CERT + WORKSHOP_TLS_KEY the organizer's own certificate (mounted files)
# Compose mounts the optional files below, or /dev/null when a setting is empty.
set -eu

CERT_FILE=/etc/workshop-tls/cert.pem
KEY_FILE=/etc/workshop-tls/key.pem
ACME_CA_ROOT_FILE=/etc/workshop-tls/acme-ca-root.pem
# Caddy reads its copies (the originals are often readable by root only); tmpfs, never a layer.
RUN_DIR=/tmp/workshop-proxy
# The largest request body passed on (Kubernetes' ingress for JupyterHub allows the same).
MAX_BODY_SIZE=64MB

fail() {
  echo "workshop proxy cannot start: $*" >&2
  exit 1
}

# A mounted file, or empty when the setting was left empty (/dev/null is mounted then).
given_file() {
  mounted=$1
  setting=$2
  host_path=$3
  if [ -d "$mounted" ]; then
    # Docker creates an empty directory on the host when a bind-mounted path does not exist.
    fail "$setting=$host_path: no such file on the host (Docker made an empty directory there: remove it, then set $setting to the PEM file's full path)"
  fi
  if [ -s "$mounted" ]; then
    echo "$mounted"
  fi
}

cert=$(given_file "$CERT_FILE" WORKSHOP_TLS_CERT "${WORKSHOP_TLS_CERT:-}")
key=$(given_file "$KEY_FILE" WORKSHOP_TLS_KEY "${WORKSHOP_TLS_KEY:-}")
acme_ca_root=$(given_file "$ACME_CA_ROOT_FILE" WORKSHOP_ACME_CA_ROOT "${WORKSHOP_ACME_CA_ROOT:-}")
domain=${WORKSHOP_DOMAIN:-}
https_port=${WORKSHOP_HTTPS_PORT:-443}

# Values go into the Caddyfile: refuse anything that could change its structure.
case "$domain" in
  *[!A-Za-z0-9.-]* | .* | *. | -*) fail "WORKSHOP_DOMAIN='$domain': use a host name such as hub.example.org" ;;
esac
case "${WORKSHOP_ACME_EMAIL:-}" in
  *[!A-Za-z0-9.@+_-]*) fail "WORKSHOP_ACME_EMAIL='$WORKSHOP_ACME_EMAIL': use an address such as you@example.org" ;;
esac
case "${WORKSHOP_ACME_CA:-}" in
  "" | https://*) ;;
  *) fail "WORKSHOP_ACME_CA='$WORKSHOP_ACME_CA': use the https:// URL of an ACME directory, or leave it empty for Let's Encrypt" ;;
esac
case "${WORKSHOP_ACME_CA:-}" in
  *[[:space:]{}\"]*) fail "WORKSHOP_ACME_CA='$WORKSHOP_ACME_CA': a URL has no spaces, braces or quotes" ;;
esac
case "$https_port" in
  "" | *[!0-9]*) fail "WORKSHOP_HTTPS_PORT='$https_port': use a port number such as 443" ;;
esac
if { [ -n "$cert" ] && [ -z "$key" ]; } || { [ -z "$cert" ] && [ -n "$key" ]; }; then
  fail "set both WORKSHOP_TLS_CERT and WORKSHOP_TLS_KEY (PEM files of your certificate and its key), or neither"
fi
if [ -z "$domain" ] && [ -z "$cert" ]; then
  fail "set WORKSHOP_DOMAIN (automatic certificates, e.g. hub.example.org) or WORKSHOP_TLS_CERT and WORKSHOP_TLS_KEY (your own certificate) in .env, or remove https from COMPOSE_PROFILES"
fi

install -d -o caddy -g caddy -m 0700 "$RUN_DIR"
for file in $cert $key $acme_ca_root; do
  copy="$RUN_DIR/$(basename "$file")"
  (umask 077 && cp "$file" "$copy")
  chown caddy:caddy "$copy"
done

# With the organizer's certificate and no domain, every name the certificate holds is served.
site=${domain:-https://}
# Each attendee at NAME.DOMAIN (WORKSHOP_ORIGIN_PER_ATTENDEE; the hub checks that a wildcard
# certificate of the organizer's is set, since ACME cannot give one here).
case "$(echo "${WORKSHOP_ORIGIN_PER_ATTENDEE:-}" | tr '[:upper:]' '[:lower:]')" in
  1 | true | yes | on) if [ -n "$domain" ]; then site="$domain, *.$domain"; fi ;;
esac
if [ "$https_port" = 443 ]; then https_authority="{host}"; else https_authority="{host}:$https_port"; fi
# Unprivileged ports inside the container (compose publishes them as the host's 80 and 443).
# Caddy's own redirect would name the inner port 8443, so the http:// site redirects instead.
cat >"$RUN_DIR/Caddyfile" <<CADDYFILE
{
	admin off
	http_port 8080
	https_port 8443
	auto_https disable_redirects
	# HTTP/3 would need UDP published too; browsers do well with HTTP/2.
	servers {
		protocols h1 h2
	}
	${WORKSHOP_ACME_EMAIL:+email $WORKSHOP_ACME_EMAIL}
	${WORKSHOP_ACME_CA:+acme_ca $WORKSHOP_ACME_CA}
	${acme_ca_root:+acme_ca_root $RUN_DIR/acme-ca-root.pem}
}

$site {
	${cert:+tls $RUN_DIR/cert.pem $RUN_DIR/key.pem}
	header Strict-Transport-Security "max-age=31536000"
	# Servers behind read a whole body into memory before they check who sent it: a notebook
	# or one of JupyterLab's upload chunks fits, a flood of large posts does not.
	request_body {
		max_size $MAX_BODY_SIZE
	}
	reverse_proxy hub:8000 {
		# Tornado (in JupyterHub) reads the scheme from X-Scheme before X-Forwarded-Proto,
		# to which the hub's own proxy appends ",http": without it, cookies would not be Secure.
		header_up X-Scheme https
		# The attendee's address, for the hub's login limits and logs.
		header_up X-Real-IP {remote_host}
	}
}

http:// {
	redir https://$https_authority{uri} 308
}
CADDYFILE
# Settings left empty leave blank lines behind.
caddy fmt --overwrite "$RUN_DIR/Caddyfile"

if [ -n "$cert" ]; then
  echo "workshop proxy: HTTPS with the certificate of WORKSHOP_TLS_CERT${domain:+ for $domain}, HTTP redirects to HTTPS"
else
  ca_name="Let's Encrypt"
  if [ -n "${WORKSHOP_ACME_CA:-}" ]; then ca_name=$WORKSHOP_ACME_CA; fi
  echo "workshop proxy: HTTPS for $domain with certificates from $ca_name (kept in the proxy-data volume), HTTP redirects to HTTPS"
fi
exec setpriv --reuid=caddy --regid=caddy --init-groups --inh-caps=-all \
  caddy run --config "$RUN_DIR/Caddyfile" --adapter caddyfile
