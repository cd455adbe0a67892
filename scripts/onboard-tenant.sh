#!/usr/bin/env bash
# Onboard a customer tenant to a multi-tenant caguard: make caguard's app registration known in the
# tenant (its service principal, which is what admin consent creates), grant it the Microsoft Graph
# application permissions of infra/graph-permissions.json (through grant-graph-permissions.sh), and
# say what is missing. With --check nothing is changed: it only reports, and exits 1 when something
# is missing, so a pipeline can run it for every tenant of the registry.
#
# Run it signed in to the CUSTOMER tenant (az login --tenant <customer tenant id>) as a Privileged Role
# Administrator or Global Administrator there.
if [ -z "${BASH_VERSION:-}" ] || [ "${BASH_VERSINFO:-0}" -lt 4 ]; then
  echo "error: $(basename "$0") needs bash 4 or later, found ${BASH_VERSION:-another shell}." >&2
  exit 1
fi
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"

usage() {
  cat <<USAGE
Usage: $(basename "$0") --app-id <application id> [--remediate] [--details] [--licences] [--no-reviews] [--check]

  --app-id     the application (client) id of caguard's multi-tenant app registration.
  --remediate, --details, --licences, --no-reviews
               the permission sets to grant, as in grant-graph-permissions.sh.
  --check      change nothing; report what is missing and exit 1 if anything is.
USAGE
}

log() { printf '%s\n' "$*"; }
die() {
  printf 'error: %s\n' "$*" >&2
  exit 2
}

app_id=""
check=false
grant_flags=()
while (($# > 0)); do
  case "$1" in
    --app-id)
      [[ $# -ge 2 ]] || die "--app-id needs a value"
      app_id="$2"
      shift
      ;;
    --remediate | --details | --licences | --no-reviews) grant_flags+=("$1") ;;
    --check) check=true ;;
    -h | --help)
      usage
      exit 0
      ;;
    *)
      usage >&2
      die "unknown argument: $1"
      ;;
  esac
  shift
done
guid_re='^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$'
[[ "$app_id" =~ $guid_re ]] || die "--app-id must be the app registration's application id (a GUID), got '${app_id}'"

command -v az >/dev/null 2>&1 || die "the Azure CLI (az) is not installed"
tenant_id="$(az account show --query tenantId -o tsv 2>/dev/null)" ||
  die "not signed in: run 'az login --tenant <customer tenant id>'"
log "customer tenant: ${tenant_id}"

consent_url="https://login.microsoftonline.com/${tenant_id}/adminconsent?client_id=${app_id}"
sp_id="$(az ad sp show --id "$app_id" --query id -o tsv 2>/dev/null || true)"
if [[ -z "$sp_id" ]]; then
  if [[ "$check" == true ]]; then
    log "missing   caguard's app ${app_id} has no service principal here: nobody has consented to it."
    log "          An administrator of this tenant consents at ${consent_url}"
    log "          or runs this script without --check."
    exit 1
  fi
  log "creating the service principal of caguard's app ${app_id} in this tenant"
  sp_id="$(az ad sp create --id "$app_id" --query id -o tsv)" ||
    die "could not create the service principal of ${app_id}: is the app registration multi-tenant (signInAudience AzureADMultipleOrgs)? An administrator can also consent at ${consent_url}"
fi
log "service principal: ${sp_id}"

dry=()
[[ "$check" != true ]] || dry=(--dry-run)
out="$("$here/grant-graph-permissions.sh" --application "${grant_flags[@]}" "${dry[@]}" "$sp_id")" || {
  printf '%s\n' "$out"
  die "granting the Graph permissions failed"
}
printf '%s\n' "$out"
if [[ "$check" == true ]]; then
  missing="$(grep -c '^would add ' <<<"$out" || true)"
  if ((missing > 0)); then
    log "missing   ${missing} Graph permission(s) above ('would add'): run without --check to grant them."
    exit 1
  fi
  log "ok        tenant ${tenant_id} is ready for caguard"
fi
