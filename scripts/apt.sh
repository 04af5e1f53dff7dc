# shellcheck shell=bash
# Sourced by the install scripts: Debian packages are installed as root only, never by calling
# apt-get as a normal user. Root runs apt-get itself; a user for whom `sudo -n` works (no password
# prompt) goes through sudo; anyone else gets the exact command to run and the script stops.
#
#   need_root WHO "COMMAND TO SUGGEST"   returns when root is available, else prints one line, exit 1
#   as_root COMMAND...                   COMMAND as root (directly or through `sudo -n`)
#   apt_install WHO PACKAGE...           apt-get update (once) + install, as root

can_be_root() {
  [[ $(id -u) -eq 0 ]] && return 0
  command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null
}

need_root() {
  local who="$1" suggestion="$2"
  can_be_root && return 0
  echo "$who: needs root (not root, and sudo -n is not allowed): run  $suggestion  then run this script again" >&2
  exit 1
}

as_root() {
  if [[ $(id -u) -eq 0 ]]; then
    "$@"
  else
    sudo -n "$@"
  fi
}

_apt_updated=0
apt_install() {
  local who="$1"
  shift
  if ! command -v apt-get >/dev/null 2>&1; then
    echo "$who: $* missing and this is not Debian/Ubuntu (no apt-get): install $* with your system's package manager, then run this script again" >&2
    exit 1
  fi
  need_root "$who" "sudo apt-get update && sudo apt-get install -y --no-install-recommends $*"
  if [[ $_apt_updated == 0 ]]; then
    as_root apt-get update -qq
    _apt_updated=1
  fi
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$@" >/dev/null
}
