#!/usr/bin/env bash
# Carry the workshop to a venue without internet: one archive holding the built images and
# this project's files, verified before anything is loaded.
#
#   scripts/venue-bundle.sh save [FILE]        # where the images were built (docker compose build)
#   scripts/venue-bundle.sh load FILE [DIR]    # at the venue: check, load the images, unpack
#                                              # the project into DIR (default ./pytorch-workshop)
#
# Then, in DIR, the README's main command (`docker compose up -d`) starts the hub from the
# loaded images, with no build and no download. Needs only Docker, Compose, GNU tar, gzip and
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

# The scratch folder of this run and a bundle still being written, removed on any exit.
WORK=""
PARTIAL=""
trap 'rm -rf ${WORK:+"$WORK"} ${PARTIAL:+"$PARTIAL"}' EXIT

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
    # Beside the target, one image at a time (about half its size) before it joins the
    # bundle: the disk holds the bundle and one image, never the bundle twice.
    work=$(mktemp -d "$(dirname "$(realpath -m "$target")")/.bundle.XXXXXX")
    WORK=$work
    PARTIAL=$target.partial
    rm -f "$PARTIAL"
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
        add_to_bundle "$work" "$file"
    done
    say "packing the project's files (without .env, which holds this event's secrets)…"
    pack_project "$work/$PROJECT_ARCHIVE"
    add_to_bundle "$work" "$PROJECT_ARCHIVE"
    printf '%s\n' "${images[@]}" > "$work/IMAGES"
    add_to_bundle "$work" IMAGES
    tar -C "$work" -rf "$PARTIAL" "./$SUMS"
    mv "$PARTIAL" "$target"
    PARTIAL=""
    say "wrote $target ($(human_size "$target"), ${#images[@]} images) in $(seconds_since "$started") s"
    say "at the venue: scripts/venue-bundle.sh load $(basename "$target")"
    say "  (or, without this checkout there: tar -xOf $(basename "$target") ./$PROJECT_ARCHIVE | tar -xz scripts/venue-bundle.sh)"
}

# add_to_bundle FOLDER FILE: FILE (a path inside FOLDER) into the bundle being written, its
# checksum into the bundle's list, and out of FOLDER.
add_to_bundle() {
    (cd "$1" && sha256sum "$2" >> "$SUMS")
    tar -C "$1" -rf "$PARTIAL" "./$2" || fail "writing $PARTIAL failed (is its disk full?)"
    rm "$1/$2"
}

# What tar runs for each file of a bundle while checking it (GNU tar's --to-command, under
# /bin/sh, the file on standard input): the checksum list is kept in $BUNDLE_SCRATCH, every
# other file summed, in sha256sum's own format.
CHECK_MEMBER='name=${TAR_FILENAME#./}
case $name in
    '"$SUMS"') cat > "$BUNDLE_SCRATCH/$name" ;;
    *) sha256sum | sed "s|-\$|$name|" ;;
esac'
# ... and while loading it: each image straight into Docker, the project into $BUNDLE_PROJECT.
LOAD_MEMBER='case $TAR_FILENAME in
    ./images/*)
        echo "loading ${TAR_FILENAME#./images/} ($(numfmt --to=iec --suffix=B "$TAR_SIZE"))…" >&2
        docker load -q >&2 ;;
    ./'"$PROJECT_ARCHIVE"') tar -xz -C "$BUNDLE_PROJECT" ;;
    *) cat > /dev/null ;;
esac'

load() {
    local bundle=${1:-} into=${2:-pytorch-workshop}
    [[ -n $bundle ]] || fail "name the bundle: scripts/venue-bundle.sh load FILE [DIR]"
    [[ -f $bundle ]] || fail "$bundle: no such file"
    if [[ -e $into && -n $(ls -A "$into" 2>/dev/null) ]]; then
        fail "$into is not empty: name an empty or new folder for the project, e.g. load $bundle ./workshop"
    fi
    docker info >/dev/null 2>&1 || fail "Docker is not running (start it, then run this again)"
    local work started
    # Only the bundle's two lists are written here: the images go from the bundle straight into
    # Docker, so the venue's disk needs no copy of it and the bundle may stay on a read-only stick.
    work=$(mktemp -d)
    WORK=$work
    started=$(date +%s)
    say "checking $bundle ($(human_size "$bundle")) against its checksums…"
    BUNDLE_SCRATCH=$work tar -xf "$bundle" --to-command="$CHECK_MEMBER" \
        >"$work/found" 2>"$work/.tar-errors" &
    wait_showing_progress $! percent_read $! "$bundle" \
        || fail "$bundle is damaged or cut short ($(tail -n 1 "$work/.tar-errors")): copy it again; nothing was loaded"
    # IMAGES must be listed; the checksums then prove it (and every listed file) is there.
    grep -qs '  IMAGES$' "$work/$SUMS" \
        || fail "$bundle is not a workshop bundle (no $SUMS or IMAGES in it); nothing was loaded"
    local difference
    # The first file whose checksum differs, is missing, or is not listed.
    difference=$({ diff <(sort "$work/$SUMS") <(sort "$work/found") || true; } \
        | sed -n 's/^[<>] [0-9a-f]*  //p' | head -n 1)
    [[ -z $difference ]] \
        || fail "$bundle does not match its checksums ($difference differs): copy it again; nothing was loaded"

    local image_count
    image_count=$(grep -c '  images/' "$work/$SUMS")
    say "loading $image_count images and the project…"
    local made_into=""
    [[ -e $into ]] || made_into=$into
    mkdir -p "$into"
    BUNDLE_PROJECT=$into tar -xf "$bundle" --to-command="$LOAD_MEMBER" &
    if ! wait_showing_progress $! percent_read $! "$bundle"; then
        [[ -n $made_into ]] && rm -rf "$made_into"
        fail "loading $bundle failed: see Docker's message above"
    fi
    say "loaded $image_count images and the project into $into in $(seconds_since "$started") s"
    say "next: cd $into && docker compose up -d   (no build, no download; settings: .env.example)"
}

case ${1:-} in
    save) shift; save "$@" ;;
    load) shift; load "$@" ;;
    *) say "usage: $0 save [FILE] | load FILE [DIR]"; exit 2 ;;
esac
