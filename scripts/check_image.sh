#!/usr/bin/env bash
# Build the service image for linux/amd64 and linux/arm64 with buildah and check what a user gets:
# the arm64 image runs under qemu-user as a Cortex-A72 (the Raspberry Pi 4's core, no ARMv8.1 atomics),
# the amd64 one natively. Per architecture: ONNX Runtime, NumPy and PyAV import and ONNX Runtime runs a
# graph (no illegal instruction), the beam search's compiled module loads, the server answers /healthz,
# the image's own HEALTHCHECK command passes, tests/fixtures/utt00.flac is transcribed through the
# OpenAI endpoint, the process runs as uid 10001; the image size, the time from `podman run` to
# /healthz and the server's resident memory after the transcription are printed in a table at the end.
#
# Emulated arm64 processes see a Raspberry Pi 4's /proc/cpuinfo (Cortex-A72, one entry per host CPU),
# bound over the host's in a private mount namespace around the arm64 build and checks. qemu-user 7.2
# (Debian 12's) hands an emulated process the host's x86 /proc/cpuinfo, and the cpuinfo library inside
# ONNX Runtime 1.28 and later dies on that as the library loads (SIGSEGV storing an L2 cache entry
# through a NULL table pointer); a Pi shows its own, and with an Arm /proc/cpuinfo the same wheel loads
# and runs. See README (Container).
#
#   scripts/check_image.sh                 # both architectures
#   scripts/check_image.sh amd64           # one
#   REBUILD_BASE=1 scripts/check_image.sh  # rebuild the stand-in base images too
#   BASE_ONLY=1 scripts/check_image.sh arm64  # only debootstrap the stand-in's root file system
#   PIP_INDEX_URL=https://mirror/simple EXTRA_CA_CERT_FILE=proxy-ca.pem scripts/check_image.sh
#                                          # passed on as the Dockerfile's build arguments
#
# No registry need be reachable: when the Dockerfile's base (python:3.11-slim-bookworm) is not in local
# storage the script makes a stand-in from Debian bookworm with debootstrap (python3, python3-venv, pip,
# `python` as a symlink) from the mirror apt uses, and tags it as that base. That stand-in's Python is
# Debian's 3.11.2 under /usr, not the official image's 3.11 under /usr/local, so the sizes differ a
# little from an image built on the real base. pip inside the build reaches the package index as usual.
# Needs root and: apt-get install podman buildah qemu-user-static debootstrap. Each step is skipped
# when its result exists (base images, built images); rerun after a change with REBUILD=1.
set -euo pipefail
cd "$(dirname "$0")/.."

ARCHS=("$@")
[ ${#ARCHS[@]} -gt 0 ] || ARCHS=(amd64 arm64)
BASE_TAG=docker.io/library/python:3.11-slim-bookworm  # the Dockerfile's FROM with its default PYTHON_VERSION
MIRROR=${MIRROR:-$(sed -n 's/^URIs: *\(\S*debian\)$/\1/p; s/^deb \(\S*debian\) bookworm .*/\1/p' \
  /etc/apt/sources.list /etc/apt/sources.list.d/*.sources 2>/dev/null | head -n1 || true)}
MIRROR=${MIRROR:-http://deb.debian.org/debian}
WORK=${WORK:-/var/tmp/edgescribe-check}
CLIP=tests/fixtures/utt00.flac
# The image must hear what this checkout's model hears natively (the reference text is "hello world";
# the embedded model's answer is what the image must reproduce). Without a working checkout: EXPECTED_TEXT.
EXPECTED_TEXT=${EXPECTED_TEXT:-$(PYTHONPATH=. python3 -m edgescribe.cli transcribe "$CLIP" 2>/dev/null || true)}
BUILD_TIMEOUT=${BUILD_TIMEOUT:-7200}  # an arm64 build under emulation takes a while
START_TIMEOUT=${START_TIMEOUT:-180}   # seconds to wait for /healthz (emulated start-up is slow)
mkdir -p "$WORK"
# Builds and checks run with buildah's chroot isolation by default (ISOLATION= for OCI containers), since
# the OCI runtimes could not run a container on the VM this was written on (hybrid cgroups for crun, no
# CAP_SYS_RESOURCE for the rlimits podman sets): the image's own file system, environment, user and
# commands, on the host's network.
ISOLATION=${ISOLATION---isolation chroot}  # set and empty: OCI containers

log() { printf '== %s\n' "$*" >&2; }

# A Raspberry Pi 4's /proc/cpuinfo (Cortex-A72 r0p3, its Features line), one entry per CPU this host has,
# since the emulated process sees the host's /sys/devices/system/cpu.
CPUINFO_A72=$WORK/cpuinfo-cortex-a72
pi4_cpuinfo() {
  local i n
  n=$(getconf _NPROCESSORS_CONF)
  for ((i = 0; i < n; i++)); do
    printf 'processor\t: %d\nBogoMIPS\t: 108.00\nFeatures\t: fp asimd evtstrm crc32 cpuid\n' "$i"
    printf 'CPU implementer\t: 0x41\nCPU architecture: 8\nCPU variant\t: 0x0\nCPU part\t: 0xd08\nCPU revision\t: 3\n\n'
  done
  printf 'Hardware\t: BCM2835\nRevision\t: c03111\nModel\t\t: Raspberry Pi 4 Model B Rev 1.1\n'
}
# A command prefix: what follows runs with that file over /proc/cpuinfo in a private mount namespace
# (the host's own stays as it is). buildah's chroot isolation binds the host's /proc into the container,
# so the build's RUN steps and `buildah run` see the file; an OCI runtime (ISOLATION=) mounts a fresh
# /proc, and run_checks then says so.
WITH_ARM_CPUINFO=(unshare --mount --propagation private sh -c 'mount --bind "$0" /proc/cpuinfo && exec "$@"' "$CPUINFO_A72")

qemu_binfmt() {
  # Emulated arm64 binaries need qemu-user registered with binfmt_misc; the F flag opens the
  # interpreter now, so it also works inside build and run containers.
  [ -e /proc/sys/fs/binfmt_misc/register ] || mount -t binfmt_misc binfmt_misc /proc/sys/fs/binfmt_misc
  [ -e /proc/sys/fs/binfmt_misc/qemu-aarch64 ] && return
  command -v qemu-aarch64-static >/dev/null || { echo "install qemu-user-static" >&2; exit 1; }
  printf '%s' ':qemu-aarch64:M::\x7f\x45\x4c\x46\x02\x01\x01\x00\x00\x00\x00\x00\x00\x00\x00\x00\x02\x00\xb7\x00:\xff\xff\xff\xff\xff\xff\xff\x00\xff\xff\xff\xff\xff\xff\xff\xff\xfe\xff\xff\xff:'"$(command -v qemu-aarch64-static)"':OCF' \
    > /proc/sys/fs/binfmt_misc/register
}

base_image() {  # $1 = arch; makes localhost/edgescribe-base:bookworm-ARCH unless it exists
  local arch=$1 image=localhost/edgescribe-base:bookworm-$1 root=$WORK/rootfs-$1
  if [ -z "${REBUILD_BASE:-}" ] && buildah inspect --type image "$image" >/dev/null 2>&1; then
    log "base $image exists"; return
  fi
  if [ -n "${REBUILD_BASE:-}" ] || [ ! -e "$root.done" ]; then
    log "debootstrap bookworm ($arch) from $MIRROR"
    rm -rf "$root" "$root.done"
    # passwd: the runtime stage's useradd; ca-certificates: pip's TLS and the Dockerfile's EXTRA_CA_CERT.
    local include=python3,python3-venv,python3-pip,python-is-python3,ca-certificates,passwd
    if [ "$arch" = "$(dpkg --print-architecture)" ]; then
      nice -n 5 debootstrap --variant=minbase --include=$include bookworm "$root" "$MIRROR"
    else
      nice -n 5 debootstrap --variant=minbase --arch="$arch" --foreign --include=$include bookworm "$root" "$MIRROR"
      nice -n 5 chroot "$root" /debootstrap/debootstrap --second-stage  # runs emulated through binfmt
    fi
    chroot "$root" apt-get clean
    rm -rf "$root"/var/lib/apt/lists/* "$root"/var/cache/apt/*.bin
    touch "$root.done"
  fi
  [ -z "${BASE_ONLY:-}" ] || return 0  # only the root file system (made while another build runs)
  local ctr
  ctr=$(buildah from scratch)
  tar -C "$root" -c . | tar -C "$(buildah mount "$ctr")" -x
  buildah umount "$ctr" >/dev/null
  buildah config --arch "$arch" --os linux --env LANG=C.UTF-8 \
    --env PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin --cmd python3 "$ctr"
  buildah commit --rm --format docker "$ctr" "$image" >/dev/null
  rm -rf "$root" "$root.done"
}

build_image() {  # $1 = arch
  local arch=$1 image=localhost/edgescribe:check-$1
  if [ -z "${REBUILD:-}" ] && buildah inspect --type image "$image" >/dev/null 2>&1; then
    log "image $image exists"; return
  fi
  if [ -n "${REBUILD_BASE:-}" ] || ! buildah inspect --type image "$BASE_TAG" >/dev/null 2>&1 \
     || [ "$(buildah inspect --type image --format '{{.OCIv1.Architecture}}' "$BASE_TAG")" != "$arch" ]; then
    base_image "$arch"
    buildah tag "localhost/edgescribe-base:bookworm-$arch" "$BASE_TAG"
  fi
  log "build $image"
  local t0=$SECONDS args=()
  [ -z "${PIP_INDEX_URL:-}" ] || args+=(--build-arg "PIP_INDEX_URL=$PIP_INDEX_URL")
  [ -z "${PIP_EXTRA_INDEX_URL:-}" ] || args+=(--build-arg "PIP_EXTRA_INDEX_URL=$PIP_EXTRA_INDEX_URL")
  [ -z "${EXTRA_CA_CERT_FILE:-}" ] || args+=(--build-arg "EXTRA_CA_CERT=$(cat "$EXTRA_CA_CERT_FILE")")
  local wrap=()
  [ "$arch" = "$(dpkg --print-architecture)" ] || wrap=("${WITH_ARM_CPUINFO[@]}")
  # --format docker: the OCI format has no HEALTHCHECK. --network host: no CNI set-up needed.
  nice -n 5 timeout "$BUILD_TIMEOUT" "${wrap[@]}" buildah build --pull=never --format docker --network host $ISOLATION \
    --platform "linux/$arch" "${args[@]}" -t "$image" -f Dockerfile . >"$WORK/build-$arch.log" 2>&1 \
    || { tail -n 30 "$WORK/build-$arch.log" >&2; echo "build $arch failed: $WORK/build-$arch.log" >&2; return 1; }
  # The Dockerfile skips its model-load check where /proc/cpuinfo is not an Arm one; here it must run.
  grep -q '^engine: ' "$WORK/build-$arch.log" \
    || { echo "build $arch: the Dockerfile's model-load check did not run ($WORK/build-$arch.log)" >&2; return 1; }
  echo $((SECONDS - t0)) >"$WORK/build-$arch.seconds"
}

# Per architecture: fills R_<field>_<arch>; a failed check is FAIL in the table and the exit status.
FAILED=0
check() {
  local name=$1; shift
  if "$@"; then eval "R_${name}_${ARCH}=ok"; else eval "R_${name}_${ARCH}=FAIL"; FAILED=1; fi
}

IMPORTS_PY='
import os, struct, sys, platform
import numpy, av, onnxruntime as ort
from model.runtime import load_serving_model
model = load_serving_model(None)  # builds an ONNX Runtime session and runs the embedded graph once below
import numpy as np
hwcap = dict(struct.iter_unpack("QQ", open("/proc/self/auxv", "rb").read())).get(16, 0)
print(platform.machine(), "onnxruntime", ort.__version__, "numpy", numpy.__version__, "av", av.__version__,
      "engine", model.engine, "atomics" if hwcap & (1 << 8) else "no-atomics")
'

# A field of the image's Docker config; lists as shell words, the HEALTHCHECK as its CMD's words.
inspect() {
  buildah inspect --type image "$1" | python3 -c '
import json, shlex, sys
value = json.load(sys.stdin)["Docker"]["config"].get(sys.argv[1])
if sys.argv[1] == "Healthcheck":
    test = (value or {}).get("Test") or []
    value = test[1:] if test[:1] == ["CMD"] else []
print(shlex.join(value) if isinstance(value, list) else value or "")' "$2"
}

run_checks() {  # $1 = arch
  local arch=$1 image=localhost/edgescribe:check-$1 port ctr
  ARCH=$arch
  port=$((18000 + RANDOM % 1000))
  local envs=(--env EDGESCRIBE_HOST=127.0.0.1 --env "EDGESCRIBE_PORT=$port") wrap=()
  # qemu-user reads QEMU_CPU from the environment of the emulated process; its /proc/cpuinfo is a Pi 4's.
  [ "$arch" = "$(dpkg --print-architecture)" ] || { envs+=(--env QEMU_CPU=cortex-a72); wrap=("${WITH_ARM_CPUINFO[@]}"); }
  eval "R_size_${arch}=$(podman image inspect --format '{{.Size}}' "$image" | awk '{printf "%.0fMB", $1/1e6}')"
  eval "R_build_${arch}=$(cat "$WORK/build-$arch.seconds" 2>/dev/null || echo '?')s"
  buildah rm "edgescribe-check-$arch" >/dev/null 2>&1 || true  # left by an interrupted run
  ctr=$(buildah from --pull=never --name "edgescribe-check-$arch" "$image")
  # shellcheck disable=SC2086  # ISOLATION is words
  crun_() { "${wrap[@]}" buildah run $ISOLATION "${envs[@]}" "$ctr" -- "$@"; }
  # Mounted here first, so the private namespaces of concurrent runs (server, healthcheck) share one
  # mount of the container, and buildah's count of its mounts stays right.
  [ ${#wrap[@]} -eq 0 ] || buildah mount "$ctr" >/dev/null

  # (The image has no shell and no coreutils: only Python answers inside it.)
  if [ ${#wrap[@]} -gt 0 ] && ! crun_ python -c "import sys; sys.exit('CPU implementer' not in open('/proc/cpuinfo').read())"; then
    # Without an Arm /proc/cpuinfo every ONNX Runtime check below would die with SIGSEGV at import.
    echo "$arch: the emulated process sees the host's /proc/cpuinfo (no Arm entries), on which ONNX Runtime" \
      ">= 1.28 crashes at load; use chroot isolation (the default) or a qemu-user that emulates it" >&2
    eval "R_cpu_${arch}='host cpuinfo'"
  fi

  log "$arch: imports and one ONNX Runtime inference"
  local out
  if out=$(crun_ python -c "$IMPORTS_PY" 2>&1); then
    echo "$out" | tail -n 1
    eval "R_imports_${arch}=ok"
    case "$out" in *no-atomics*) eval "R_cpu_${arch}='no LSE atomics'";; *atomics*) eval "R_cpu_${arch}=native";; esac
  else
    echo "$out" >&2; eval "R_imports_${arch}=FAIL"; FAILED=1
  fi
  # The beam search's compiled frame loop made it into the runtime root (built in the build stage).
  check beam test "$(crun_ python -c 'import model.ctc as c; print("compiled" if c._native else "python")')" = compiled
  check uid test "$(crun_ python -c 'import os; print(os.getuid())')" = 10001
  check user test "$(inspect "$image" User)" = 10001

  log "$arch: serve ($(inspect "$image" Entrypoint) $(inspect "$image" Cmd))"
  local t0 t1 up="" server
  t0=$(date +%s.%N)
  # shellcheck disable=SC2046
  crun_ $(inspect "$image" Entrypoint) $(inspect "$image" Cmd) \
    >"$WORK/serve-$arch.log" 2>&1 &
  server=$!
  while [ "$(echo "$(date +%s.%N) - $t0 < $START_TIMEOUT" | bc)" = 1 ] && kill -0 $server 2>/dev/null; do
    if curl -fsS -o /dev/null "http://127.0.0.1:$port/healthz" 2>/dev/null; then up=1; break; fi
    sleep 0.2
  done
  t1=$(date +%s.%N)
  if [ -n "$up" ]; then
    eval "R_healthz_${arch}=ok"
    eval "R_startup_${arch}=$(printf '%.1fs' "$(echo "$t1 - $t0" | bc)")"
  else
    tail -n 20 "$WORK/serve-$arch.log" >&2
    eval "R_healthz_${arch}=FAIL"; FAILED=1
  fi

  # The image's own HEALTHCHECK command (["CMD", ...]), as an engine would run it.
  local hc
  hc=$(inspect "$image" Healthcheck)
  # shellcheck disable=SC2086
  check healthcheck test -n "$hc" -a -n "$(crun_ $hc && echo ok)"

  log "$arch: transcribe $CLIP"
  local text
  text=$(curl -fsS --max-time 300 -F "file=@$CLIP" -F model=whisper-1 -F response_format=text \
    "http://127.0.0.1:$port/v1/audio/transcriptions" 2>&1) || true
  echo "transcript: $text (expected: ${EXPECTED_TEXT:-any})"
  if [ -n "$text" ] && [ "$(echo "$text" | tr -d '\r\n')" = "${EXPECTED_TEXT:-$text}" ]; then
    eval "R_transcribe_${arch}=ok"
  else
    eval "R_transcribe_${arch}=FAIL"; FAILED=1
  fi
  # Resident memory of the server process, the one listening (under emulation this includes qemu's own).
  local pid
  pid=$(ss -Hltnp "sport = :$port" | sed -n 's/.*pid=\([0-9]*\).*/\1/p' | head -n1)
  if [ -n "$pid" ]; then
    eval "R_rss_${arch}=$(awk '/VmRSS/ {printf "%.0fMB", $2/1024}' "/proc/$pid/status")"
    kill "$pid"
  fi
  wait $server 2>/dev/null || true
  buildah rm "$ctr" >/dev/null
}

for a in "${ARCHS[@]}"; do
  case $a in amd64|arm64) ;; *) echo "unknown architecture $a (amd64, arm64)" >&2; exit 2;; esac
  [ "$a" = "$(dpkg --print-architecture)" ] || { qemu_binfmt; pi4_cpuinfo >"$CPUINFO_A72"; }
  if [ -n "${BASE_ONLY:-}" ]; then base_image "$a"; continue; fi
  if build_image "$a"; then run_checks "$a"; else eval "R_build_${a}=FAIL"; FAILED=1; fi
done

printf '\n%-12s' ""; for a in "${ARCHS[@]}"; do printf '%-18s' "linux/$a"; done; printf '\n'
for field in cpu build size imports beam startup healthz healthcheck transcribe uid user rss; do
  printf '%-12s' "$field"
  for a in "${ARCHS[@]}"; do v="R_${field}_${a}"; printf '%-18s' "${!v:--}"; done
  printf '\n'
done
exit $FAILED
