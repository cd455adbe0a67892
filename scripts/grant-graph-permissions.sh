#!/usr/bin/env bash
# Grant caguard's managed identity the Microsoft Graph application permissions it needs. The sets
# below are those of infra/graph-permissions.json, the single source of truth (a test keeps them
# equal):
#   alert      always        Policy.Read.All, GroupMember.Read.All
#   reviews    by default    AccessReview.Read.All (leave it out with --no-reviews, for EXCLUSION_REVIEW=off)
#   remediate  --remediate   Policy.ReadWrite.ConditionalAccess, Application.Read.All, User.Read.All
#   users      --details     User.Read.All
#   signIns    --details     User.Read.All, AuditLog.Read.All
#   licences   --licences    LicenseAssignment.Read.All
#
# Idempotent: roles the service principal already holds are skipped. Nothing is ever removed; a
# write permission that is present without --remediate is reported, with the command to remove it.
#
# Run it as a Privileged Role Administrator or Global Administrator of the tenant (assigning
# Microsoft Graph application permissions is admin consent), signed in with `az login`.

# mapfile and ${x,,} below need bash 4; macOS still ships bash 3.2 as /bin/bash.
# Written for any sh, so that an old bash or another shell gets this message rather than a syntax error.
if [ -z "${BASH_VERSION:-}" ] || [ "${BASH_VERSINFO:-0}" -lt 4 ]; then
  echo "error: $(basename "$0") needs bash 4 or later, found ${BASH_VERSION:-another shell}." >&2
  echo "       On macOS: brew install bash, then run: \"\$(brew --prefix)/bin/bash\" $0 ..." >&2
  exit 1
fi
set -euo pipefail

GRAPH_APP_ID="00000003-0000-0000-c000-000000000000" # Microsoft Graph
# Permission sets of infra/graph-permissions.json (handler/config/permissions_infra_test.go compares them).
SET_ALERT=("Policy.Read.All" "GroupMember.Read.All")
SET_REVIEWS=("AccessReview.Read.All")
SET_REMEDIATE=("Policy.ReadWrite.ConditionalAccess" "Application.Read.All" "User.Read.All")
SET_USERS=("User.Read.All")
# Reading sign-in activity (signInActivity) takes both, and an Entra ID P1 or P2 licence.
SET_SIGNINS=("User.Read.All" "AuditLog.Read.All")
# Reading the tenant's subscriptions (GET /subscribedSkus), for controls that need a licence.
SET_LICENCES=("LicenseAssignment.Read.All")
WRITE_ROLE="Policy.ReadWrite.ConditionalAccess"

usage() {
  cat <<EOF
Usage: $(basename "$0") [--remediate] [--details] [--licences] [--no-reviews] [--application] [--dry-run] <principal-id>

Grants the Microsoft Graph application permissions caguard needs to the service principal of its
managed identity.

  <principal-id>   object id of the managed identity's service principal: the
                   identityPrincipalId output of infra/main.bicep.
  --remediate      also grant ${SET_REMEDIATE[*]},
                   which REMEDIATION_MODE=remediate needs.
  --details        also grant ${SET_USERS[*]} ${SET_SIGNINS[*]:1}: the exclusion report then names
                   excluded accounts and shows their last sign-in. Read-only, but tenant-wide
                   (every user's profile, the sign-in logs), so it is opt-in.
  --licences       also grant ${SET_LICENCES[*]}: read the tenant's subscriptions, so
                   that a control needing a licence (the risk controls: Entra ID P2) reports
                   LICENCE_MISSING when the tenant lacks it. Only for CONTROLS that enable one.
  --no-reviews     leave out ${SET_REVIEWS[*]} (EXCLUSION_REVIEW=off).
  --application    the principal is an app registration's service principal (caguard's
                   multi-tenant app in a customer tenant), not a managed identity.
  --dry-run        show what would be granted, change nothing.
  -h, --help       show this help.

Always granted: ${SET_ALERT[*]}; by default also ${SET_REVIEWS[*]}.
Requires the Azure CLI, signed in (az login) as a Privileged Role Administrator or Global
Administrator of the tenant that caguard watches.
EOF
}

log() { printf '%s\n' "$*"; }
die() {
  printf 'error: %s\n' "$*" >&2
  exit 1
}

remediate=false
details=false
licences=false
application=false
reviews=true
dry_run=false
principal_id=""
while (($# > 0)); do
  case "$1" in
    --remediate) remediate=true ;;
    --details) details=true ;;
    --licences) licences=true ;;
    --no-reviews) reviews=false ;;
    --application) application=true ;;
    --dry-run) dry_run=true ;;
    -h | --help)
      usage
      exit 0
      ;;
    -*)
      usage >&2
      die "unknown option: $1"
      ;;
    *)
      [[ -z "$principal_id" ]] || die "only one principal id may be given"
      principal_id="$1"
      ;;
  esac
  shift
done

if [[ -z "$principal_id" ]]; then
  usage >&2
  exit 2
fi
guid_re='^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$'
[[ "$principal_id" =~ $guid_re ]] || die "principal id must be a GUID, got '$principal_id'"
principal_id="${principal_id,,}"

# --- prerequisites ---
command -v az >/dev/null 2>&1 || die "the Azure CLI (az) is not installed"
tenant_id="$(az account show --query tenantId -o tsv 2>/dev/null)" ||
  die "not signed in: run 'az login' (as a Privileged Role Administrator or Global Administrator)"
log "tenant:    ${tenant_id}"

sp_json_query='[id, displayName, servicePrincipalType]'
if ! sp_info="$(az ad sp show --id "$principal_id" --query "$sp_json_query" -o tsv 2>/dev/null)"; then
  die "no service principal with object id ${principal_id} in tenant ${tenant_id} (a new managed identity can take a minute to appear)"
fi
# az prints a list one value per line (tabs separate the columns of a row, not list items); take
# the values positionally either way.
mapfile -t sp_fields < <(tr '\t' '\n' <<<"$sp_info")
sp_name="${sp_fields[1]:-}"
sp_type="${sp_fields[2]:-}"
log "principal: ${sp_name} (${principal_id}, ${sp_type})"
if [[ "$application" == true ]]; then
  [[ "$sp_type" == "Application" ]] || log "warning: ${principal_id} is a ${sp_type} service principal, not an app registration's"
elif [[ "$sp_type" != "ManagedIdentity" ]]; then
  log "warning: ${principal_id} is a ${sp_type} service principal, not a managed identity"
fi

graph_sp_id="$(az ad sp show --id "$GRAPH_APP_ID" --query id -o tsv)" ||
  die "cannot read the Microsoft Graph service principal"
[[ -n "$graph_sp_id" ]] || die "the Microsoft Graph service principal was not found in this tenant"

graph_api="https://graph.microsoft.com/v1.0"

# Microsoft Graph's application permissions, one "<name><TAB><id>" per line.
graph_roles="$(az ad sp show --id "$GRAPH_APP_ID" \
  --query "appRoles[?contains(allowedMemberTypes, 'Application')].[value, id]" -o tsv)" ||
  die "cannot read the application permissions of Microsoft Graph"

# app_role_id NAME: the id of the Microsoft Graph application permission NAME.
app_role_id() {
  local id
  id="$(awk -F '\t' -v name="$1" '$1 == name { print $2; exit }' <<<"$graph_roles")"
  [[ -n "$id" ]] || die "Microsoft Graph has no application permission named $1"
  printf '%s' "$id"
}

# Role ids already granted to the principal on Microsoft Graph, one per line. az rest returns one
# page at a time, so follow @odata.nextLink.
assigned=""
url="${graph_api}/servicePrincipals/${principal_id}/appRoleAssignments"
while [[ -n "$url" ]]; do
  page="$(az rest --method get --url "$url" \
    --query "[join(' ', value[?resourceId=='${graph_sp_id}'].appRoleId), \"@odata.nextLink\"]" -o tsv)" ||
    die "cannot list the app role assignments of ${principal_id}"
  mapfile -t page_fields < <(tr '\t' '\n' <<<"$page")
  ids="${page_fields[0]:-}"
  url="${page_fields[1]:-}"
  [[ "$url" != "None" ]] || url=""
  assigned+="$(tr ' ' '\n' <<<"$ids")"$'\n'
done

is_assigned() { grep -qixF -- "$1" <<<"$assigned"; }

wanted=()
want() {
  local role
  for role in "$@"; do
    [[ " ${wanted[*]} " == *" $role "* ]] || wanted+=("$role")
  done
}
want "${SET_ALERT[@]}"
[[ "$reviews" != true ]] || want "${SET_REVIEWS[@]}"
[[ "$remediate" != true ]] || want "${SET_REMEDIATE[@]}"
[[ "$details" != true ]] || want "${SET_USERS[@]}" "${SET_SIGNINS[@]}"
[[ "$licences" != true ]] || want "${SET_LICENCES[@]}"

granted=0
for role in "${wanted[@]}"; do
  role_id="$(app_role_id "$role")"
  if is_assigned "$role_id"; then
    log "ok        ${role} (already granted)"
    continue
  fi
  if [[ "$dry_run" == true ]]; then
    log "would add ${role}"
    continue
  fi
  body="$(printf '{"principalId":"%s","resourceId":"%s","appRoleId":"%s"}' "$principal_id" "$graph_sp_id" "$role_id")"
  az rest --method post \
    --url "${graph_api}/servicePrincipals/${principal_id}/appRoleAssignments" \
    --headers "Content-Type=application/json" \
    --body "$body" --output none ||
    die "granting ${role} failed (assigning Graph application permissions needs Privileged Role Administrator or Global Administrator)"
  log "added     ${role}"
  granted=$((granted + 1))
done

if [[ "$remediate" != true ]]; then
  write_id="$(app_role_id "$WRITE_ROLE")"
  if is_assigned "$write_id"; then
    log "note: ${WRITE_ROLE} is granted although --remediate was not given; caguard writes only"
    log "      when REMEDIATION_MODE=remediate. To remove it:"
    log "      az rest --method get --url '${graph_api}/servicePrincipals/${principal_id}/appRoleAssignments' --query \"value[?appRoleId=='${write_id}'].id\" -o tsv"
    log "      az rest --method delete --url '${graph_api}/servicePrincipals/${principal_id}/appRoleAssignments/<assignment id>'"
  fi
fi

if [[ "$dry_run" == true ]]; then
  log "dry run: nothing changed"
elif ((granted > 0)); then
  log "done: ${granted} permission(s) added. They apply from caguard's next Graph token; a managed"
  log "identity's token can stay cached for up to 24 hours."
else
  log "done: nothing to add"
fi
