"""The server side of the attendee's help add-on: JupyterLab's page calls this server (with the
attendee's own login, as every JupyterLab call), and this server calls the hub's console with
the server's own API token, as the labs' checks do (workshop_labs/progress.py). The page never
holds a token and never talks to the console itself.

Routes, under the server's base URL:

- ``/workshop-help/hand``: GET, POST ({"kind": "stuck"|"done", "note", "notebook"}), DELETE;
- ``/workshop-help/notices?after=N&boot=B``: the attendee's news, held open until some comes;
- ``/workshop-help/progress``: the attendee's own exercise grid.
"""

from __future__ import annotations

from workshop_help.handlers import routes


def _jupyter_server_extension_points() -> list[dict]:
    return [{"module": "workshop_help"}]


def _load_jupyter_server_extension(server_app) -> None:
    web_app = server_app.web_app
    web_app.add_handlers(".*$", routes(web_app.settings["base_url"]))
    server_app.log.info("workshop_help: hand, notices and progress routes ready")
