#!/usr/bin/env bash
# Carry the workshop to a venue without internet: one archive holding the built images and
# this project's files, verified before anything is loaded.
#
#   scripts/venue-bundle.sh save [FILE]        # where the images were built (docker compose build)
#   scripts/venue-bundle.sh load FILE [DIR]    # at the venue: check, load the images, unpack
#                                              # the project into DIR (default ./pytorch-workshop)
#
# Then, in DIR, the README's main command (`docker compose up -d`) starts the hub from the
# loaded images, with no build and no download. Needs only Docker, Compose, tar, gzip and
# sha256sum, which the README's set-up already has.
#
# The images are the ones docker-compose.yml names, with the settings of the environment and
# .env (WORKSHOP_*_IMAGE): the hub and the CPU lab image must exist; the CUDA lab image and
# the HTTPS proxy are carried when they were built. The settings (.env, which holds the
# event's secrets) stay behind: the bundle carries .env.example, the template.
set -euo pipefail

PROJECT=$(cd "$(dirname "$0")/.." && pwd)
SUMS=SHA256SUMS
PROJECT_ARCHIVE=project.tar.gz

# The scratch folder of this run, removed on any exit.
WORK=""
trap '[[ -n $WORK ]] && rm -rf "$WORK"' EXIT

say() { printf '%s\n' "$*" >&2; }
fail() { say "error: $*"; exit 1; }
seconds_since() { echo $(($(date +%s) - $1)); }
human_size() { numfmt --to=iec --suffix=B "$(stat -c %s "$1")"; }

compose() {
    if docker compose version >/dev/null 2>&1; then
        docker compose "$@"
    elif command -v docker-compose >/dev/null; then
        docker-compose "$@"
    else
        fail "neither 'docker compose' nor 'docker-compose' is installed (see the README's set-up)"
    fi
}

# Every image docker-compose.yml names, once each, as the settings resolve them.
compose_images() {
    (cd "$PROJECT" && compose --profile gpu --profile https config) \
        | sed -n 's/^ *image: *//p' | tr -d "\"'" | sort -u
}

image_exists() { docker image inspect "$1" >/dev/null 2>&1; }

# wait_showing_progress PID COMMAND...: waits for the background job PID, saying every 10 s
# how far it got (COMMAND's output), since saving or loading one image takes minutes;
# returns the job's status.
wait_showing_progress() {
    local pid=$1
    shift
    local seconds=0
    while kill -0 "$pid" 2>/dev/null; do
        sleep 1
        seconds=$((seconds + 1))
        ((seconds % 10 == 0)) && kill -0 "$pid" 2>/dev/null && say "      … $("$@" 2>/dev/null)"
    done
    wait "$pid"
}

# How much of FILE the process PID has read so far, as a percentage.
percent_read() {
    local read_bytes
    read_bytes=$(awk '/^rchar/ {print $2}' "/proc/$1/io")
    echo "$((read_bytes * 100 / $(stat -c %s "$2")))% read"
}

# The project's files as they are here (tracked files with any local edits, in a checkout),
# never .env (this event's secrets), virtualenvs or reports.
pack_project() {
    if git -C "$PROJECT" rev-parse --is-inside-work-tree >/dev/null 2>&1; then
        # New files too; files deleted here stay out; never .env, even if it were tracked.
        (cd "$PROJECT" && git ls-files -z --cached --others --exclude-standard \
            | while IFS= read -r -d '' file; do
                if [[ -e $file && $file != .env ]]; then printf '%s\0' "$file"; fi
            done | tar --null -T - -czf "$1")
    else
        tar -C "$PROJECT" -czf "$1" --exclude=./.env --exclude=./.venv --exclude=./reports \
            --exclude='*/__pycache__' --exclude='*.egg-info' .
    fi
}

save() {
    local target=${1:-pytorch-workshop-bundle.tar}
    [[ -e $target ]] && fail "$target exists: remove it or name another file"
    docker info >/dev/null 2>&1 || fail "Docker is not running (start it, then run this again)"
    local images=() missing=() image
    while read -r image; do
        if image_exists "$image"; then
            images+=("$image")
        else
            missing+=("$image")
        fi
    done < <(compose_images)
    for image in "${missing[@]}"; do
        case $image in
            *cuda* | *proxy*) say "not carried (not built here): $image" ;;
            *) fail "$image is not built here: run 'docker compose build' first" ;;
        esac
    done

    local work started
    # Beside the target: the images are large, and /tmp may be small.
    work=$(mktemp -d "$(dirname "$(realpath -m "$target")")/.bundle.XXXXXX")
    WORK=$work
    mkdir "$work/images"
    started=$(date +%s)
    local number=0
    for image in "${images[@]}"; do
        number=$((number + 1))
        local file="images/$(echo "$image" | tr '/:' '__').tar.gz"
        say "[$number/${#images[@]}] saving $image ($(docker image inspect -f '{{.Size}}' "$image" | numfmt --to=iec --suffix=B))…"
        docker save "$image" | gzip -1 > "$work/$file" &
        wait_showing_progress $! human_size "$work/$file" \
            || fail "saving $image failed (is the disk beside $target full?)"
        say "      $file: $(human_size "$work/$file") after $(seconds_since "$started") s"
    done
    say "packing the project's files (without .env, which holds this event's secrets)…"
    pack_project "$work/$PROJECT_ARCHIVE"
    printf '%s\n' "${images[@]}" > "$work/IMAGES"
    say "checksums…"
    (cd "$work" && find . -type f ! -name "$SUMS" -printf '%P\n' | sort | xargs sha256sum > "$SUMS")
    tar -C "$work" -cf "$target.partial" .
    mv "$target.partial" "$target"
    say "wrote $target ($(human_size "$target"), ${#images[@]} images) in $(seconds_since "$started") s"
    say "at the venue: scripts/venue-bundle.sh load $(basename "$target")"
    say "  (or, without this checkout there: tar -xOf $(basename "$target") ./$PROJECT_ARCHIVE | tar -xz scripts/venue-bundle.sh)"
}

load() {
    local bundle=${1:-} into=${2:-pytorch-workshop}
    [[ -n $bundle ]] || fail "name the bundle: scripts/venue-bundle.sh load FILE [DIR]"
    [[ -f $bundle ]] || fail "$bundle: no such file"
    if [[ -e $into && -n $(ls -A "$into" 2>/dev/null) ]]; then
        fail "$into is not empty: name an empty or new folder for the project, e.g. load $bundle ./workshop"
    fi
    docker info >/dev/null 2>&1 || fail "Docker is not running (start it, then run this again)"
    local work started
    work=$(mktemp -d "$(dirname "$(realpath "$bundle")")/.bundle.XXXXXX")
    WORK=$work
    started=$(date +%s)
    say "unpacking $bundle ($(human_size "$bundle"))…"
    tar -xf "$bundle" -C "$work" 2>"$work/.tar-errors" \
        || fail "$bundle is damaged or cut short ($(tail -n 1 "$work/.tar-errors")): copy it again; nothing was loaded"
    [[ -f $work/$SUMS && -f $work/IMAGES ]] \
        || fail "$bundle is not a workshop bundle (no $SUMS or IMAGES in it); nothing was loaded"
    say "verifying checksums…"
    (cd "$work" && sha256sum --quiet -c "$SUMS") >"$work/.sum-errors" 2>&1 \
        || fail "$bundle does not match its checksums ($(head -n 1 "$work/.sum-errors")): copy it again; nothing was loaded"
    local files=("$work"/images/*.tar.gz) number=0 file
    for file in "${files[@]}"; do
        number=$((number + 1))
        say "[$number/${#files[@]}] loading $(basename "$file") ($(human_size "$file"))…"
        docker load -q -i "$file" >&2 &
        wait_showing_progress $! percent_read $! "$file" \
            || fail "loading $(basename "$file") failed: see Docker's message above"
    done
    mkdir -p "$into"
    tar -xzf "$work/$PROJECT_ARCHIVE" -C "$into"
    say "loaded $(wc -l < "$work/IMAGES") images and the project into $into in $(seconds_since "$started") s"
    say "next: cd $into && docker compose up -d   (no build, no download; settings: .env.example)"
}

case ${1:-} in
    save) shift; save "$@" ;;
    load) shift; load "$@" ;;
    *) say "usage: $0 save [FILE] | load FILE [DIR]"; exit 2 ;;
esac
