#!/usr/bin/env bash
# Build a stand-in for the CUDA PyTorch base image where no registry can be reached (CI here):
# a minimal Debian bookworm with python3, python3-venv, python3-pip and CA certificates, made with
# debootstrap from the Debian mirror apt already uses, and `docker import`ed as $TAG.
# With LSTMGAN_STAND_IN_TORCH=/path/to/python (CI: the project's .venv/bin/python), torch, torchvision and what
# they need are hard-linked in from that Python's environment (docker/ci/link-torch.py), as the real base has
# them: the image's venv then keeps them, as it keeps the real base's. Without it the base has no torch and the
# image's build installs it (see docker/ci/pip-mirror.sh): minutes, and about 11 GB of disk at its peak.
#
#   docker/ci/stand-in-base.sh            build unless the tag exists already (cache)
#   docker/ci/stand-in-base.sh --force    rebuild
#
# Env: LSTMGAN_STAND_IN_TAG (default lstmgan-base:stand-in), LSTMGAN_STAND_IN_TORCH (above),
# LSTMGAN_DEBIAN_MIRROR (default: the first deb.debian-style URI in /etc/apt/sources.list(.d)),
# LSTMGAN_DOCKER_STATE (work dir parent).
# Needs root, debootstrap (apt-get installed if missing) and a running engine (docker/ci/engine.sh start).
#
# Trust: the host may reach PyPI through a TLS-intercepting proxy whose CA is installed here under
# /usr/local/share/ca-certificates. Those certificates are copied in and registered with
# update-ca-certificates, and the image sets PIP_CERT/REQUESTS_CA_BUNDLE/SSL_CERT_FILE to the system bundle
# (pip in a venv otherwise trusts only its own certifi copy). That is the stand-in's business only;
# docker/Dockerfile itself carries no certificates or proxy settings.
set -euo pipefail

TAG=${LSTMGAN_STAND_IN_TAG:-lstmgan-base:stand-in}
STATE=${LSTMGAN_DOCKER_STATE:-/tmp/lstmgan-docker}
SUITE=bookworm
PACKAGES=python3,python3-venv,python3-pip,ca-certificates
export DOCKER_HOST=${DOCKER_HOST:-unix://$STATE/docker.sock}

say() { echo "stand-in-base.sh: $*" >&2; }

if [[ ${1:-} != --force ]] && docker image inspect "$TAG" >/dev/null 2>&1; then
    say "$TAG exists; skipping (--force rebuilds)"
    exit 0
fi

mirror() {
    if [[ -n ${LSTMGAN_DEBIAN_MIRROR:-} ]]; then
        echo "$LSTMGAN_DEBIAN_MIRROR"
        return
    fi
    # deb822 (*.sources: "URIs: ...") and one-line (*.list: "deb URI suite ...") formats; the first URI
    # that serves the main archive (not -security, not a third-party repo) wins.
    local f uri
    for f in /etc/apt/sources.list.d/*.sources /etc/apt/sources.list /etc/apt/sources.list.d/*.list; do
        [[ -f $f ]] || continue
        while read -r uri; do
            case $uri in
            *security* | "") ;;
            */debian | */debian/) echo "${uri%/}"; return ;;
            esac
        done < <(sed -n -e 's/^URIs:[[:space:]]*\([^[:space:]]*\).*/\1/p' \
            -e 's/^deb[[:space:]]\+\(\[[^]]*\][[:space:]]\+\)\?\([^[:space:]]*\).*/\2/p' "$f")
    done
    echo "http://deb.debian.org/debian"
}

command -v debootstrap >/dev/null 2>&1 ||
    DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends debootstrap >&2

MIRROR=$(mirror)
mkdir -p "$STATE"
ROOT=$(mktemp -d "$STATE/rootfs.XXXXXX")
# debootstrap mounts /proc (and may mount /sys) in the rootfs and has been seen to leave /proc mounted: the
# tar below would then archive the host's processes, and rm would walk into the host's pseudo-files.
unmount_all() {
    local m
    for m in dev/pts dev sys proc; do
        if mountpoint -q "$ROOT/$m"; then umount -l "$ROOT/$m"; fi
    done
}
trap 'unmount_all; rm -rf --one-file-system "$ROOT"' EXIT

t0=$SECONDS
say "debootstrap --variant=minbase $SUITE from $MIRROR"
debootstrap --variant=minbase --include="$PACKAGES" "$SUITE" "$ROOT" "$MIRROR" >"$STATE/debootstrap.log" 2>&1 ||
    { tail -n 30 "$STATE/debootstrap.log" >&2; exit 1; }
say "debootstrap done in $((SECONDS - t0))s"

# The host's extra CAs (see the header), then the system bundle is rebuilt inside the rootfs.
if compgen -G "/usr/local/share/ca-certificates/*.crt" >/dev/null; then
    cp /usr/local/share/ca-certificates/*.crt "$ROOT/usr/local/share/ca-certificates/"
fi
chroot "$ROOT" update-ca-certificates >/dev/null 2>&1 || say "warning: update-ca-certificates failed in the rootfs"

# Slim: apt lists and caches, docs, man pages.
rm -rf "$ROOT"/var/lib/apt/lists/* "$ROOT"/var/cache/apt/*.bin "$ROOT"/var/cache/apt/archives/*.deb \
    "$ROOT"/usr/share/doc/* "$ROOT"/usr/share/man/* "$ROOT"/usr/share/info/* "$ROOT"/usr/share/locale/*
# The sources the image would use for apt-get, like an official debian image.
echo "deb $MIRROR $SUITE main" >"$ROOT/etc/apt/sources.list"

if [[ -n ${LSTMGAN_STAND_IN_TORCH:-} ]]; then
    version='import sys; print(*sys.version_info[:2], sep=".")'
    want=$(chroot "$ROOT" python3 -c "$version")
    have=$("$LSTMGAN_STAND_IN_TORCH" -c "$version")
    [[ $want == "$have" ]] ||
        { say "LSTMGAN_STAND_IN_TORCH is Python $have, the stand-in's is $want: its torch would not load"; exit 1; }
    site=$(chroot "$ROOT" python3 -c 'import site; print(site.getsitepackages()[0])')
    "$LSTMGAN_STAND_IN_TORCH" "$(dirname "${BASH_SOURCE[0]}")/link-torch.py" "$ROOT$site"
fi

BUNDLE=/etc/ssl/certs/ca-certificates.crt
unmount_all
tar -C "$ROOT" --numeric-owner --one-file-system -c . | docker import \
    --change "ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin" \
    --change "ENV LANG=C.UTF-8" \
    --change "ENV PIP_CERT=$BUNDLE" \
    --change "ENV REQUESTS_CA_BUNDLE=$BUNDLE" \
    --change "ENV SSL_CERT_FILE=$BUNDLE" \
    --change 'CMD ["/bin/bash"]' \
    --message "lstmgan stand-in base: debian $SUITE minbase + $PACKAGES" \
    - "$TAG" >/dev/null
say "imported $TAG ($(docker image inspect --format '{{.Size}}' "$TAG" | awk '{printf "%.0f MB", $1/1e6}')) in $((SECONDS - t0))s"
