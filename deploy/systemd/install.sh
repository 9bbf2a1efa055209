#!/bin/sh
# Install or upgrade the house-prices API as a systemd service, from a checkout
# of a release tag, as root (deploy/systemd/README.md):
#
#   sudo INDEX_URL='https://USER:PASSWORD@pypi.internal/simple/' deploy/systemd/install.sh
#
# INDEX_URL is the private package index. It is the only place pip looks:
# --index-url, no extra index, and no pip configuration (files, PIP_*
# variables) is read, so no public package can stand in for ours (dependency
# confusion). The URL reaches pip in a temporary root-only requirements file,
# not on a command line that `ps` shows.
#
# What it does (every step is a no-op when already done, so a rerun is safe):
#  1. the system user and group house-prices (no home, no login shell);
#  2. a release in /opt/house-prices-api/releases/<model version>-<digest of
#     the API code and requirements>: a venv with api/requirements.txt
#     (which pins the model package by exact version) at the versions of
#     constraints.txt, and a copy of api/ (without its tests), root-owned and
#     read-only to the service; built aside and renamed into place, so a
#     half-built release is never used;
#  3. /opt/house-prices-api/current -> that release (switched atomically);
#  4. /etc/house-prices-api/env from the example, mode 0640, only if absent;
#  5. the unit in /etc/systemd/system, enabled; started, or restarted when the
#     release or the unit changed.
#
# Optional: PYTHON (default python3, 3.11 to 3.13), NO_START=1 (install and
# enable, but leave the service as it is).
set -eu

NAME=house-prices-api
SERVICE_USER=house-prices
PREFIX=/opt/$NAME
CONF_DIR=/etc/$NAME
UNIT_DIR=/etc/systemd/system
PYTHON=${PYTHON:-python3}

say() { printf '%s: %s\n' "$NAME" "$*"; }
die() { printf '%s: error: %s\n' "$NAME" "$*" >&2; exit 1; }

[ "$(id -u)" -eq 0 ] || die "run as root (sudo)"
[ -n "${INDEX_URL:-}" ] || die "set INDEX_URL to the private index (e.g. https://USER:PASSWORD@host/simple/)"
HERE=$(cd "$(dirname "$0")" && pwd)
SRC=$(cd "$HERE/../.." && pwd)
for file in api/__main__.py api/requirements.txt constraints.txt \
            deploy/systemd/$NAME.service deploy/systemd/$NAME.env; do
    [ -f "$SRC/$file" ] || die "$SRC/$file is missing: run this from a checkout of the project"
done
command -v systemctl >/dev/null 2>&1 || die "systemctl not found: this machine does not run systemd"
"$PYTHON" -c 'import sys, venv; sys.exit(not (3, 11) <= sys.version_info[:2] < (3, 14))' 2>/dev/null \
    || die "$PYTHON must be Python 3.11 to 3.13 with venv (Debian: apt-get install python3-venv)"

umask 022

# 1. The service user.
if ! getent group "$SERVICE_USER" >/dev/null; then
    groupadd --system "$SERVICE_USER"
fi
if ! getent passwd "$SERVICE_USER" >/dev/null; then
    useradd --system --gid "$SERVICE_USER" --no-create-home --home-dir /nonexistent \
        --shell /usr/sbin/nologin --comment "house-prices API" "$SERVICE_USER"
    say "created system user $SERVICE_USER"
fi

# 2. The release. Its name says which model it serves (the exact pin) and which
# API code and requirements (a digest), so reinstalling the same checkout
# finds it built, and an older one can be switched back to (rollback).
MODEL_VERSION=$(sed -n 's/^ames-regression-model\(\[[^]]*\]\)\{0,1\}==\([^ ;#]*\).*/\2/p' \
    "$SRC/api/requirements.txt")
[ -n "$MODEL_VERSION" ] || die "api/requirements.txt does not pin ames-regression-model==VERSION"
DIGEST=$(cd "$SRC" && find api constraints.txt -type f ! -path 'api/tests/*' \
         ! -name '*.pyc' ! -path '*/__pycache__/*' | LC_ALL=C sort \
         | xargs sha256sum | sha256sum | cut -c1-12)
RELEASE=$MODEL_VERSION-$DIGEST
RELEASES=$PREFIX/releases
TARGET=$RELEASES/$RELEASE
install -d -o root -g root -m 0755 "$PREFIX" "$RELEASES"

changed=no
if [ -x "$TARGET/venv/bin/python" ] && [ -f "$TARGET/app/api/__main__.py" ]; then
    say "release $RELEASE is already installed"
else
    BUILD=$RELEASES/.build-$RELEASE
    rm -rf "$BUILD"
    say "building release $RELEASE (model $MODEL_VERSION) in $BUILD"
    "$PYTHON" -m venv "$BUILD/venv"
    REQUIREMENTS=$(mktemp)   # mode 0600, root's: it holds the index credentials
    trap 'rm -f "$REQUIREMENTS"' EXIT
    printf -- '--index-url %s\n-r %s\n' "$INDEX_URL" "$SRC/api/requirements.txt" >"$REQUIREMENTS"
    # --isolated: no pip configuration file and no PIP_* variable is read.
    "$BUILD/venv/bin/python" -m pip --isolated install --no-cache-dir \
        --disable-pip-version-check --no-input \
        -c "$SRC/constraints.txt" -r "$REQUIREMENTS"
    rm -f "$REQUIREMENTS"
    trap - EXIT
    "$BUILD/venv/bin/python" -c 'import regression_model, sys; sys.exit(regression_model.__version__ != sys.argv[1])' \
        "$MODEL_VERSION" || die "the installed model package is not version $MODEL_VERSION"
    mkdir "$BUILD/app"
    cp -R "$SRC/api" "$BUILD/app/api"
    rm -rf "$BUILD/app/api/tests"
    find "$BUILD/app" -name __pycache__ -type d -prune -exec rm -rf {} +
    # Compiled now, as root: the service cannot write here (PYTHONDONTWRITEBYTECODE).
    "$BUILD/venv/bin/python" -m compileall -q "$BUILD/app"
    chown -R root:root "$BUILD"
    chmod -R u+rwX,go+rX,go-w "$BUILD"
    mv "$BUILD" "$TARGET"
    changed=yes
fi

# 3. Point `current` at it: a new symlink renamed over the old one.
if [ "$(readlink "$PREFIX/current" 2>/dev/null || true)" != "releases/$RELEASE" ]; then
    ln -sfn "releases/$RELEASE" "$PREFIX/current.new"
    mv -T "$PREFIX/current.new" "$PREFIX/current"
    say "current -> releases/$RELEASE"
    changed=yes
fi

# 4. The settings, installed once: an operator's edits are never overwritten.
install -d -o root -g root -m 0755 "$CONF_DIR"
if [ ! -e "$CONF_DIR/env" ]; then
    install -o root -g root -m 0640 "$SRC/deploy/systemd/$NAME.env" "$CONF_DIR/env"
    say "installed $CONF_DIR/env (edit it, then: systemctl restart $NAME)"
fi

# 5. The unit.
if ! cmp -s "$SRC/deploy/systemd/$NAME.service" "$UNIT_DIR/$NAME.service"; then
    install -o root -g root -m 0644 "$SRC/deploy/systemd/$NAME.service" "$UNIT_DIR/$NAME.service"
    systemctl daemon-reload
    changed=yes
fi
systemctl enable --quiet "$NAME.service"
if [ "${NO_START:-0}" = 1 ]; then
    say "installed; not started (NO_START=1)"
elif [ "$changed" = yes ] && systemctl is-active --quiet "$NAME.service"; then
    systemctl restart "$NAME.service"
    say "restarted with release $RELEASE"
else
    systemctl start "$NAME.service"
    say "running release $RELEASE"
fi
