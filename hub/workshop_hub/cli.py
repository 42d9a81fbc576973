"""`workshop-hub`: the organizer's commands, run inside the hub container.

docker compose exec hub workshop-hub access-code   # the room's code and the admin password
docker compose exec hub workshop-hub gpus          # who holds which GPU
docker compose exec hub workshop-hub check         # validate the settings
workshop-hub env-example                           # print .env.example
"""

from __future__ import annotations

import argparse
import os
import sys

from . import credentials
from .settings import SettingsError, load_settings, render_env_example


def _access_code(settings) -> None:
    code = settings.access_code or credentials.ACCESS_CODE_FILE.read_text().strip()
    password = settings.admin_password or credentials.ADMIN_PASSWORD_FILE.read_text().strip()
    print(f"access code:    {code}")
    print(f"admin users:    {', '.join(settings.admin_users) or '(none)'}")
    print(f"admin password: {password}")


def _gpus(settings) -> None:
    import docker

    from .docker_host import running_gpu_holders

    holders = running_gpu_holders(docker.from_env(), settings.instance)
    if not holders:
        print("No attendee holds a GPU.")
        return
    by_gpu: dict[str, list[str]] = {}
    for user, device in holders.items():
        by_gpu.setdefault(device, []).append(user)
    print(f"{'GPU':<6}{'attendees':<10}who")
    for device in sorted(by_gpu):
        users = sorted(by_gpu[device])
        print(f"{device:<6}{len(users):<10}{', '.join(users)}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="workshop-hub", description=__doc__.split("\n\n")[0])
    parser.add_argument("command", choices=["access-code", "gpus", "check", "env-example"])
    args = parser.parse_args(argv)
    if args.command == "env-example":
        print(render_env_example(), end="")
        return 0
    try:
        settings = load_settings(os.environ)
        if args.command == "access-code":
            _access_code(settings)
        elif args.command == "gpus":
            _gpus(settings)
        else:
            print("settings are valid")
    except SettingsError as error:
        print(f"invalid setting: {error}", file=sys.stderr)
        return 1
    except FileNotFoundError:
        print(
            "The hub has not generated the access code yet: start it first "
            "(docker compose up -d), then run this again.",
            file=sys.stderr,
        )
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
