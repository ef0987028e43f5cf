# Shared helpers for the project's scripts (sourced, not run).

# Reuse one cargo target dir outside the clone, so that a fresh clone (CI) does not rebuild
# every dependency: `$CARGO_TARGET_DIR` if set, else ~/.cache/glint/target.
use_shared_target_dir() {
  export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-${GLINT_CACHE_DIR:-$HOME/.cache/glint}/target}"
  mkdir -p "$CARGO_TARGET_DIR"
}

step() {
  printf '\n==> %s\n' "$*"
}
