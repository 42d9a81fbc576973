"""`workshop-hub`: the organizer's commands, run inside the hub container.

docker compose exec hub workshop-hub access-code          # the room code, and nothing else
docker compose exec hub workshop-hub admin-password       # the admins' names and password
docker compose exec hub workshop-hub reset-password NAME  # a new password for one attendee
docker compose exec hub workshop-hub new-event --yes      # new room code, everyone logged out
docker compose exec -T hub workshop-hub roster add - < roster.csv  # attendees known ahead
docker compose exec hub workshop-hub roster cards > cards.html  # their login cards, to print
docker compose exec hub workshop-hub warm-room            # start their servers before 09:00
docker compose exec hub workshop-hub gpus                 # who holds which GPU
docker compose exec hub workshop-hub check                # validate the settings
docker compose exec hub workshop-hub rehearse --attendees 30  # the room at 09:00, rehearsed
docker compose exec hub workshop-hub export-work "$PWD/workshop-export"  # everyone's work
docker compose run --rm hub workshop-hub wipe-event       # after the event: work, users, secrets
docker compose run --rm hub workshop-hub helm-values --registry REGISTRY > values.yaml  # Kubernetes
workshop-hub env-example                                  # print .env.example
"""

from __future__ import annotations

import argparse
import asyncio
import os
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from ..access import credentials, sessions
from ..access.passwords import RESET_PASSWORD_ADVICE, PasswordStore, ResetRefused, check_resettable
from ..settings import SettingsError, load_settings, parse_duration, parse_size, render_env_example


class CommandError(Exception):
    """What went wrong and what to do, printed as one line."""


def _stored(configured: str | None, path) -> str:
    if configured:
        return configured
    try:
        return path.read_text().strip()
    except FileNotFoundError:
        raise CommandError(
            "The hub has not generated its secrets yet: start it first "
            "(docker compose up -d), then run this again."
        ) from None


def _access_code(settings, args) -> None:
    print(_stored(settings.access_code, credentials.ACCESS_CODE_FILE))


def _admin_password(settings, args) -> None:
    print(f"admin users:    {', '.join(settings.admin_users) or '(none)'}")
    print(f"admin password: {_stored(settings.admin_password, credentials.ADMIN_PASSWORD_FILE)}")


def _reset_password(settings, args) -> None:
    name = args.name.strip().lower()
    store = PasswordStore(credentials.ATTENDEE_PASSWORDS_FILE)
    new_password = credentials.generate_access_code()
    try:
        # Refusals first: they need no hub.
        check_resettable(store, name, settings.admin_users)
        api = sessions.organizer_api()
    except (ResetRefused, sessions.ResetFailed) as refused:
        raise CommandError(str(refused)) from None
    print(f"Ending {name}'s sessions, tokens and server (their work is kept)...", flush=True)
    try:
        asyncio.run(
            sessions.give_new_password(api, store, name, settings.admin_users, new_password)
        )
    except (ResetRefused, sessions.ResetFailed) as refused:
        raise CommandError(str(refused)) from None
    print(f"New password for {name}: {new_password}")
    print(RESET_PASSWORD_ADVICE)


def _stop_attendee_servers(instance: str) -> int:
    import docker

    from ..room.profiles import LABEL_INSTANCE

    client = docker.from_env()
    containers = client.containers.list(all=True, filters={"label": f"{LABEL_INSTANCE}={instance}"})

    def stop(container) -> None:
        # A graceful stop first, so the Jupyter server can finish writing what it holds.
        try:
            container.stop(timeout=10)
            container.remove(force=True)
        except docker.errors.NotFound:
            pass  # the hub noticed the stop and removed it first
        except docker.errors.APIError as error:
            if error.status_code != 409:  # 409: a removal is already under way
                raise

    with ThreadPoolExecutor(max_workers=16) as pool:
        list(pool.map(stop, containers))
    return len(containers)


def _new_event(settings, args) -> None:
    if not args.yes:
        raise CommandError(
            "new-event stops every attendee server, logs everyone out and makes a new room "
            "code (attendees' files and passwords are kept). Run it again with --yes."
        )
    stopped = _stop_attendee_servers(settings.instance)
    print(f"Stopped {stopped} attendee servers; their files are kept.")
    try:
        revoked = asyncio.run(
            sessions.revoke_attendee_tokens(sessions.organizer_api(), settings.admin_users)
        )
    except sessions.ResetFailed as failed:
        raise CommandError(
            f"attendees' tokens were not revoked ({failed}): run new-event again"
        ) from None
    print(f"Revoked {revoked} attendee tokens.")
    code = credentials.start_new_event(settings.access_code)
    if code is None:
        print(
            "The room code is set in .env (WORKSHOP_ACCESS_CODE): change it there and run "
            "`docker compose restart hub` to use a new one."
        )
    else:
        print(f"New room code: {code}")
    print("The hub restarts now with a new cookie secret: every old session is over.")
    sys.stdout.flush()
    # Ending PID 1 (tini) lets compose's restart policy start the hub again. Done from a
    # detached child after a moment, so this command itself ends normally first.
    subprocess.Popen(["sh", "-c", "sleep 1; kill -TERM 1"], start_new_session=True)


def _roster(settings, args) -> None:
    from ..access import cards, names
    from ..access.auth import max_names
    from ..access.exposure import public_address
    from ..access.roster import Roster, RosterError, parse_roster_csv

    roster = Roster(PasswordStore(credentials.ATTENDEE_PASSWORDS_FILE))
    try:
        if args.action == "add":
            source = "standard input" if args.file == "-" else args.file
            data = _read_roster_file(args.file)
            attendees = parse_roster_csv(data, source)
            reserved = names.reserved_names(names.remember_instructors(settings.admin_users))
            added, already = roster.add(
                attendees, reserved | set(settings.admin_users), max_names(settings), print
            )
            for name in already:
                print(f"{name} is on the roster already: their card is unchanged")
            print(
                f"Added {len(added)} attendee(s) to the roster; print their login cards with "
                "`workshop-hub roster cards > cards.html` or the console's Login cards page."
            )
        elif args.action == "list":
            states = roster.states()
            for state in states:
                card = "card not used yet" if state.card_unused else "logged in (own password)"
                print(f"{state.entry.name:32}  {state.entry.display_name:30}  {card}")
            print(f"{len(states)} on the roster")
        elif args.action == "remove":
            name = args.name.strip().lower()
            if roster.remove(name):
                _forget_hub_user(name)
                print(f"{name} is off the roster; the name is free again")
            else:
                print(
                    f"{name} is off the roster; they already chose their own password, so the "
                    "name stays theirs (delete the user to free it)"
                )
        else:
            address = args.address or public_address(settings, os.environ)
            if not address:
                raise CommandError(
                    "The hub listens on every address and has no name: pass --address with "
                    "the address attendees open, or set WORKSHOP_PUBLIC_URL"
                )
            page = cards.render_cards(roster.states(), address)
            if args.output:
                args.output.write_text(page, encoding="utf-8")
                print(f"wrote {args.output}")
            else:
                sys.stdout.write(page)
    except RosterError as error:
        raise CommandError(str(error)) from None


def _read_roster_file(file: str) -> bytes:
    from ..access.roster import MAX_ROSTER_FILE_BYTES

    try:
        if file == "-":
            return sys.stdin.buffer.read(MAX_ROSTER_FILE_BYTES + 1)
        with open(file, "rb") as handle:
            return handle.read(MAX_ROSTER_FILE_BYTES + 1)
    except OSError as error:
        raise CommandError(
            f"cannot read {file} ({error.strerror}): inside the hub's container, give the list "
            "on standard input: docker compose exec -T hub workshop-hub roster add - < FILE"
        ) from None


def _forget_hub_user(name: str) -> None:
    """Delete a rostered name's user (and its warm server) so the room code can claim it."""
    from ..room.attendee_removal import RemovalFailed, delete_hub_user

    deadline = time.monotonic() + sessions.STOP_WAIT_SECONDS
    try:
        asyncio.run(delete_hub_user(sessions.organizer_api(), name, deadline))
    except (sessions.ResetFailed, RemovalFailed) as failed:
        raise CommandError(
            f"{name} is off the roster, but the hub still knows the user ({failed}): delete "
            "it on the console, or run this again once the hub is up"
        ) from None


def _warm_room(settings, args) -> None:
    from ..access.roster import rostered_unused_names
    from ..console.warm_room import warm_room

    store = PasswordStore(credentials.ATTENDEE_PASSWORDS_FILE)
    waiting = sorted(rostered_unused_names(store))
    if not waiting:
        raise CommandError(
            "Nobody on the roster is waiting for a server: add the list first "
            "(`workshop-hub roster add`); attendees who logged in start their own."
        )
    try:
        result = asyncio.run(
            warm_room(
                sessions.organizer_api(),
                waiting,
                settings.warm_hold,
                args.profile,
                lambda line: print(line, flush=True),
                args.timeout,
            )
        )
    except sessions.ResetFailed as failed:
        raise CommandError(f"warm-room: {failed}") from None
    for name, why in sorted(result.failed.items()):
        print(f"{name}: not warm: {why}")
    print(
        f"{len(result.ready)} of {len(waiting)} servers warm in {result.seconds:.0f} s; kept "
        f"from the idle culler for {settings.warm_hold // 60} minutes (WORKSHOP_WARM_HOLD) "
        "unless their attendee logs in"
    )
    if result.failed:
        sys.exit(1)


def _gpus(settings, args) -> None:
    import docker

    from ..room.docker_host import running_gpu_holders
    from ..room.gpu import holders_table

    # What Docker runs now: a server that was shut down or died is not listed.
    print(holders_table(running_gpu_holders(docker.from_env().api, settings.instance)))


def _check(settings, args) -> None:
    print("settings are valid")


def _rehearse(settings, args) -> None:
    from . import rehearsal

    room_code = _stored(settings.access_code, credentials.ACCESS_CODE_FILE)
    try:
        status = rehearsal.rehearse(
            settings,
            args.attendees,
            args.timeout,
            args.output,
            args.profile,
            room_code,
            rooms=args.rooms,
        )
    except rehearsal.RehearsalError as error:
        raise CommandError(f"rehearsal: {error}") from None
    if status:
        sys.exit(status)


def _preflight(settings, args) -> None:
    from . import preflight

    status = preflight.run(settings, args.json, image_checks=not args.no_image_checks)
    if status:
        sys.exit(status)


def _export_work(settings, args) -> None:
    from . import event

    try:
        event.export_work_command(settings, args.folder, args.size_limit, args.time_limit)
    except event.EventError as error:
        raise CommandError(str(error)) from None


def _wipe_event(settings, args) -> None:
    from . import event

    try:
        event.wipe_event_command(settings, args.yes, sys.stdin, sys.stdout)
    except event.EventError as error:
        raise CommandError(str(error)) from None


def _helm_values(settings, args) -> None:
    from . import kubernetes

    choices = kubernetes.ClusterChoices(
        registry=args.registry,
        gpu_sharing=args.gpu_sharing,
        storage_class=args.storage_class,
        attendees=args.attendees,
    )
    try:
        print(kubernetes.render(os.environ, settings, choices), end="")
    except kubernetes.NotForKubernetes as refused:
        print(f"helm-values: {refused}", file=sys.stderr)
        sys.exit(2)


COMMANDS = {
    "access-code": (_access_code, "print the room code attendees need for their first login"),
    "admin-password": (_admin_password, "print the admin users and their password"),
    "reset-password": (_reset_password, "give one attendee a new password; their work is kept"),
    "new-event": (_new_event, "new room code, new cookie secret, every server stopped"),
    "roster": (_roster, "attendees known ahead: add, list, remove, print their login cards"),
    "warm-room": (_warm_room, "start the rostered attendees' servers before they arrive"),
    "gpus": (_gpus, "list who holds which GPU"),
    "check": (_check, "validate the settings"),
    "rehearse": (_rehearse, "simulate N attendees starting at once, measure, clean up"),
    "preflight": (_preflight, "is this host ready for the day? one verdict per check"),
    "export-work": (_export_work, "pack each attendee's work folder into a host folder"),
    "wipe-event": (_wipe_event, "delete attendees' work, users and secrets, after asking"),
    "helm-values": (_helm_values, "Zero to JupyterHub's values for this workshop on Kubernetes"),
}


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="workshop-hub", description=__doc__.split("\n\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("env-example", help="print .env.example")
    for name, (_, help_text) in COMMANDS.items():
        command = commands.add_parser(name, help=help_text)
        if name == "reset-password":
            command.add_argument("name", help="the attendee's name")
        if name in ("new-event", "wipe-event"):
            command.add_argument("--yes", action="store_true", help="really do it")
        if name == "export-work":
            _export_work_arguments(command)
        if name == "preflight":
            command.add_argument("--json", action="store_true", help="print JSON")
            command.add_argument(
                "--no-image-checks",
                action="store_true",
                help="leave out the lab images' own checks (minutes) for a quick re-check",
            )
        if name == "rehearse":
            _rehearse_arguments(command)
        if name == "helm-values":
            _helm_values_arguments(command)
        if name == "roster":
            _roster_arguments(command)
        if name == "warm-room":
            command.add_argument(
                "--profile", help="the profile of the warm servers (default: the first, e.g. cpu)"
            )
            command.add_argument(
                "--timeout", type=float, default=3600, help="seconds to wait for every server"
            )
    return parser


def _roster_arguments(command: argparse.ArgumentParser) -> None:
    actions = command.add_subparsers(dest="action", required=True)
    add = actions.add_parser("add", help="add attendees from a CSV file: name, display name")
    add.add_argument("file", help="the CSV file, or - for standard input")
    actions.add_parser("list", help="everyone on the roster, and whether they logged in")
    remove = actions.add_parser("remove", help="take one name off the roster")
    remove.add_argument("name", help="the attendee's name")
    print_cards = actions.add_parser("cards", help="the login cards page (HTML, to print)")
    print_cards.add_argument("--output", type=Path, help="write it to this file")
    print_cards.add_argument(
        "--address", help="the address attendees open (default: WORKSHOP_PUBLIC_URL or derived)"
    )


def _option(parse):
    """An argparse type from a settings parser: a bad value is refused with its hint."""

    def parsed(text: str):
        try:
            return parse(text)
        except ValueError as error:
            raise argparse.ArgumentTypeError(str(error)) from None

    return parsed


def _export_work_arguments(command: argparse.ArgumentParser) -> None:
    command.add_argument(
        "folder", help="absolute path of a folder on the Docker host (made if missing)"
    )
    # A folder past a limit is cut (NAME.partial.tar.gz) and the export goes on with the next.
    command.add_argument(
        "--size-limit",
        metavar="SIZE",
        type=_option(parse_size),
        help="most bytes packed from one work folder, e.g. 10G (default: WORKSHOP_DISK_LIMIT "
        "and a quarter more for tar's headers)",
    )
    command.add_argument(
        "--time-limit",
        metavar="DURATION",
        type=_option(parse_duration),
        help="longest time packing one work folder, e.g. 20m (default: the size limit at "
        "10 MB/s, at least 5 minutes)",
    )


def _helm_values_arguments(command: argparse.ArgumentParser) -> None:
    command.add_argument(
        "--registry",
        default="",
        help="where you push the images, e.g. registry.example.org/workshop",
    )
    command.add_argument(
        "--gpu-sharing",
        help="whole, time-slicing, or a MIG profile such as 1g.10gb (default: whole when "
        "WORKSHOP_ATTENDEES_PER_GPU is 1, else time-slicing)",
    )
    command.add_argument("--storage-class", help="storage class of the work volumes")
    command.add_argument(
        "--attendees",
        type=int,
        help="attendees at 09:00, for the placeholders that keep room for them (default: "
        "WORKSHOP_MAX_ATTENDEES, or 30 when it is auto)",
    )


def _rehearse_arguments(command: argparse.ArgumentParser) -> None:
    from .rehearsal import DEFAULT_ATTENDEES, DEFAULT_TIMEOUT_S, OUTPUT_ROOT, ROOMS

    command.add_argument(
        "--attendees",
        type=int,
        default=DEFAULT_ATTENDEES,
        help="simulated attendees, 1 to the room size (at most 200)",
    )
    command.add_argument(
        "--timeout",
        type=float,
        default=DEFAULT_TIMEOUT_S,
        help="seconds for the whole run, cleanup included",
    )
    command.add_argument(
        "--output",
        type=Path,
        help=f"folder for report.json and timeline.png (default {OUTPUT_ROOT}/<UTC time>)",
    )
    command.add_argument(
        "--profile", help="profile to choose on the start form, when there is one (e.g. cpu)"
    )
    command.add_argument(
        "--rooms",
        type=_rooms,
        default=ROOMS,
        help="which rooms to rehearse, one after the other: walk-in (the room code at 09:00), "
        "warm (rostered, servers started ahead), or both (default: walk-in,warm)",
    )


def _rooms(text: str) -> tuple[str, ...]:
    from .rehearsal import ROOMS

    rooms = tuple(dict.fromkeys(part.strip() for part in text.split(",") if part.strip()))
    unknown = [room for room in rooms if room not in ROOMS]
    if unknown or not rooms:
        raise argparse.ArgumentTypeError(f"use {', '.join(ROOMS)} or both (comma-separated)")
    return rooms


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.command == "env-example":
        print(render_env_example(), end="")
        return 0
    try:
        settings = load_settings(os.environ)
        COMMANDS[args.command][0](settings, args)
    except SettingsError as error:
        print(f"invalid setting: {error}", file=sys.stderr)
        return 1
    except CommandError as error:
        print(error, file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
