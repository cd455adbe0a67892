#!/usr/bin/env bash
# Set up caguard's multi-tenant app registration in the provider's HOME tenant (the tenant of the
# Function's managed identity), so that one deployment can guard many customer tenants without a
# secret:
#   1. create the app registration, or reuse it (by --app-id, or by its display name), with
#      signInAudience AzureADMultipleOrgs, so that each customer tenant can consent to it;
#   2. declare the Microsoft Graph application permissions it needs (requiredResourceAccess): the sets
#      of infra/graph-permissions.json for the flags given, which the admin-consent URL of
#      onboard-tenant.sh then asks each customer tenant for;
#   3. add the federated identity credential through which the Function's managed identity signs in as
#      the app (Entra docs, "Configure an application to trust a managed identity": issuer
#      https://login.microsoftonline.com/<home tenant id>/v2.0, subject the managed identity's object
#      (principal) id, case-sensitive, audience api://AzureADTokenExchange; app and identity in one tenant);
#   4. set TENANTS_APP_CLIENT_ID on the Function app (with --function-app and --resource-group), or
#      print it for the tenantsAppClientId parameter of infra/main.bicep.
# No client secret or certificate is ever created. Idempotent: what is already there is left as it
# is, and nothing is ever removed. With --check nothing is changed: it reports what is missing and
# exits 1 when anything is, like onboard-tenant.sh.
#
# Run it signed in to the HOME tenant (az login --tenant <home tenant id>) as an Application
# Administrator, Cloud Application Administrator, or an owner of the app registration. Then onboard
# each customer tenant with onboard-tenant.sh --app-id <the app id printed here>.
if [ -z "${BASH_VERSION:-}" ] || [ "${BASH_VERSINFO:-0}" -lt 4 ]; then
  echo "error: $(basename "$0") needs bash 4 or later, found ${BASH_VERSION:-another shell}." >&2
  exit 1
fi
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
permissions_file="${here}/../infra/graph-permissions.json"

GRAPH_APP_ID="00000003-0000-0000-c000-000000000000" # Microsoft Graph
WRITE_ROLE="Policy.ReadWrite.ConditionalAccess"
# Entra docs, "Configure an application to trust a managed identity": the audience of the managed
# identity's token that Entra accepts as the app's client assertion (public cloud).
FIC_AUDIENCE="api://AzureADTokenExchange"

usage() {
  cat <<USAGE
Usage: $(basename "$0") --principal-id <id> [--app-id <id> | --name <display name>]
       [--function-app <name> --resource-group <rg>] [--remediate] [--details] [--licences] [--no-reviews] [--check]

  --principal-id    object (principal) id of the Function's managed identity: the
                    identityPrincipalId output of infra/main.bicep.
  --app-id          reuse this app registration (its application id).
  --name            display name to find or create the app registration by (default: caguard).
  --function-app, --resource-group
                    set TENANTS_APP_CLIENT_ID on this Function app; without them the value is
                    printed for the tenantsAppClientId parameter of infra/main.bicep.
  --remediate, --details, --licences, --no-reviews
                    the permission sets of infra/graph-permissions.json to declare, as in
                    grant-graph-permissions.sh.
  --check           change nothing; report what is missing and exit 1 if anything is.
USAGE
}

log() { printf '%s\n' "$*"; }
die() {
  printf 'error: %s\n' "$*" >&2
  exit 2
}

principal_id=""
app_id=""
name="caguard"
function_app=""
resource_group=""
check=false
flags=()
need_value() { [[ $2 -ge 2 ]] || die "$1 needs a value"; }
while (($# > 0)); do
  case "$1" in
    --principal-id)
      need_value "$1" $#
      principal_id="$2"
      shift
      ;;
    --app-id)
      need_value "$1" $#
      app_id="$2"
      shift
      ;;
    --name)
      need_value "$1" $#
      name="$2"
      shift
      ;;
    --function-app)
      need_value "$1" $#
      function_app="$2"
      shift
      ;;
    --resource-group)
      need_value "$1" $#
      resource_group="$2"
      shift
      ;;
    --remediate | --details | --licences | --no-reviews) flags+=("$1") ;;
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
[[ "$principal_id" =~ $guid_re ]] ||
  die "--principal-id must be the managed identity's object id (a GUID: the identityPrincipalId output of infra/main.bicep), got '${principal_id}'"
[[ -z "$app_id" || "$app_id" =~ $guid_re ]] || die "--app-id must be an application id (a GUID), got '${app_id}'"
[[ -n "$name" && "$name" != *"'"* ]] || die "--name must be a display name without quotes, got '${name}'"
[[ -z "$function_app" && -z "$resource_group" ]] || [[ -n "$function_app" && -n "$resource_group" ]] ||
  die "--function-app and --resource-group go together"

command -v jq >/dev/null 2>&1 || die "jq is not installed (it reads ${permissions_file})"
[[ -r "$permissions_file" ]] || die "cannot read ${permissions_file}"

# The permission names to declare, from infra/graph-permissions.json: every set granted "always", every
# "default" set unless its skip flag is given, and every set whose grant flag is given. The flags are
# the same as grant-graph-permissions.sh's (a test holds that script to the same file).
flags_json="$(printf '%s\n' "${flags[@]}" | jq -R . | jq -s 'map(select(. != ""))')"
mapfile -t wanted < <(jq -r --argjson flags "$flags_json" '
  def given($f): $flags | any(.[]; . == $f);
  [.sets[] | select(.grant == "always"
                    or (.grant == "default" and (given(.skip // "") | not))
                    or given(.grant))
   | .permissions[]] | reduce .[] as $p ([]; if any(.[]; . == $p) then . else . + [$p] end) | .[]' "$permissions_file")
((${#wanted[@]} > 0)) || die "${permissions_file} names no permission for these flags"

command -v az >/dev/null 2>&1 || die "the Azure CLI (az) is not installed"
tenant_id="$(az account show --query tenantId -o tsv 2>/dev/null)" ||
  die "not signed in: run 'az login --tenant <home tenant id>' (the tenant of the Function's managed identity)"
log "home tenant: ${tenant_id}"

# The issuer is the authority of the home tenant in the signed-in cloud (login.microsoftonline.com in
# the public cloud; the same docs name login.partner.microsoftonline.cn for Azure operated by 21Vianet).
authority="$(az cloud show --query endpoints.activeDirectory -o tsv)" || die "cannot read the cloud's Entra authority"
authority="${authority%/}"
[[ "$authority" == https://* ]] || die "the cloud's Entra authority '${authority}' is not an https URL"
issuer="${authority}/${tenant_id}/v2.0"

missing=0
report_missing() {
  log "missing   $*"
  missing=$((missing + 1))
}

# --- 1. the app registration ---
if [[ -n "$app_id" ]]; then
  az ad app show --id "$app_id" --query appId -o tsv >/dev/null 2>&1 ||
    die "no app registration with application id ${app_id} in tenant ${tenant_id}"
else
  mapfile -t found < <(az ad app list --display-name "$name" --query "[?displayName=='${name}'].appId" -o tsv)
  if ((${#found[@]} > 1)); then
    die "${#found[@]} app registrations are named '${name}' (${found[*]}): name the one to use with --app-id"
  fi
  app_id="${found[0]:-}"
fi
if [[ -z "$app_id" ]]; then
  if [[ "$check" == true ]]; then
    report_missing "no app registration named '${name}': run without --check to create it."
    log "missing   ${missing} item(s)."
    exit 1
  fi
  app_id="$(az ad app create --display-name "$name" --sign-in-audience AzureADMultipleOrgs --query appId -o tsv)" ||
    die "could not create the app registration '${name}' (it needs Application Administrator, Cloud Application Administrator or Application Developer)"
  log "created   app registration '${name}' (${app_id}), multi-tenant"
else
  log "app:       ${app_id}"
fi

audience="$(az ad app show --id "$app_id" --query signInAudience -o tsv)"
if [[ "$audience" == "AzureADMultipleOrgs" ]]; then
  log "ok        signInAudience AzureADMultipleOrgs"
elif [[ "$check" == true ]]; then
  report_missing "signInAudience is ${audience}, want AzureADMultipleOrgs: customer tenants cannot consent to it."
else
  az ad app update --id "$app_id" --sign-in-audience AzureADMultipleOrgs --output none ||
    die "could not make ${app_id} multi-tenant"
  log "changed   signInAudience ${audience} -> AzureADMultipleOrgs"
fi

# --- 2. Microsoft Graph application permissions (requiredResourceAccess) ---
# Microsoft Graph's application permissions, one "<name><TAB><id>" per line.
graph_roles="$(az ad sp show --id "$GRAPH_APP_ID" \
  --query "appRoles[?contains(allowedMemberTypes, 'Application')].[value, id]" -o tsv)" ||
  die "cannot read the application permissions of Microsoft Graph"
app_role_id() {
  local id
  id="$(awk -F '\t' -v name="$1" '$1 == name { print $2; exit }' <<<"$graph_roles")"
  [[ -n "$id" ]] || die "Microsoft Graph has no application permission named $1"
  printf '%s' "$id"
}
declared="$(az ad app show --id "$app_id" \
  --query "requiredResourceAccess[?resourceAppId=='${GRAPH_APP_ID}'].resourceAccess[] | [?type=='Role'].id" -o tsv)"
is_declared() { grep -qixF -- "$1" <<<"$declared"; }

to_add=()
for role in "${wanted[@]}"; do
  role_id="$(app_role_id "$role")"
  if is_declared "$role_id"; then
    log "ok        ${role} (declared)"
  elif [[ "$check" == true ]]; then
    report_missing "${role} is not among the app's Graph permissions"
  else
    to_add+=("${role_id}=Role")
    log "adding    ${role}"
  fi
done
if ((${#to_add[@]} > 0)); then
  # permission add appends to requiredResourceAccess: what the app already declares stays.
  az ad app permission add --id "$app_id" --api "$GRAPH_APP_ID" --api-permissions "${to_add[@]}" --output none ||
    die "could not declare the Graph permissions on ${app_id}"
  log "declared  ${#to_add[@]} Graph permission(s); each customer tenant grants them with onboard-tenant.sh"
fi
if [[ " ${flags[*]} " != *" --remediate "* ]] && is_declared "$(app_role_id "$WRITE_ROLE")"; then
  log "note: the app declares ${WRITE_ROLE} although --remediate was not given; it is left as it is."
fi

# --- 3. the federated identity credential of the managed identity ---
fic_name="caguard-mi-${principal_id,,}"
fics="$(az ad app federated-credential list --id "$app_id" \
  --query "[].[name, issuer, subject, join(' ', audiences)]" -o tsv)"
# issuer and subject are compared exactly: Entra matches them against the token's claims, and the
# subject (the principal id) is case-sensitive.
fic_row="$(awk -F '\t' -v i="$issuer" -v s="$principal_id" '$2 == i && $3 == s { print; exit }' <<<"$fics")"
if [[ -n "$fic_row" ]]; then
  IFS=$'\t' read -r fic_found_name _ _ fic_audiences <<<"$fic_row"
  [[ " ${fic_audiences} " == *" ${FIC_AUDIENCE} "* ]] ||
    die "federated credential '${fic_found_name}' trusts the managed identity with audiences '${fic_audiences}', not ${FIC_AUDIENCE}: fix or delete it (az ad app federated-credential delete --id ${app_id} --federated-credential-id ${fic_found_name}), then run this again"
  log "ok        federated credential '${fic_found_name}' (issuer ${issuer}, subject ${principal_id})"
elif [[ "$check" == true ]]; then
  report_missing "no federated credential for the managed identity ${principal_id} (issuer ${issuer})"
else
  fic="$(jq -cn --arg n "$fic_name" --arg i "$issuer" --arg s "$principal_id" --arg a "$FIC_AUDIENCE" \
    '{name: $n, issuer: $i, subject: $s, audiences: [$a], description: "caguard: the Function app'"'"'s managed identity signs in as this app"}')"
  az ad app federated-credential create --id "$app_id" --parameters "$fic" --output none ||
    die "could not add the federated credential to ${app_id} (an app holds at most 20)"
  log "added     federated credential '${fic_name}' (issuer ${issuer}, subject ${principal_id}, audience ${FIC_AUDIENCE})"
fi

# --- 4. TENANTS_APP_CLIENT_ID ---
if [[ -n "$function_app" ]]; then
  current="$(az functionapp config appsettings list -g "$resource_group" -n "$function_app" \
    --query "[?name=='TENANTS_APP_CLIENT_ID'].value" -o tsv)" ||
    die "cannot read the app settings of ${function_app} in ${resource_group}"
  if [[ "$current" == "$app_id" ]]; then
    log "ok        TENANTS_APP_CLIENT_ID on ${function_app}"
  elif [[ "$check" == true ]]; then
    report_missing "TENANTS_APP_CLIENT_ID on ${function_app} is '${current}', want ${app_id}"
  else
    az functionapp config appsettings set -g "$resource_group" -n "$function_app" \
      --settings "TENANTS_APP_CLIENT_ID=${app_id}" --output none ||
      die "could not set TENANTS_APP_CLIENT_ID on ${function_app}"
    log "set       TENANTS_APP_CLIENT_ID=${app_id} on ${function_app}"
  fi
  # A deployment of infra/main.bicep sets the app's whole list of settings.
  log "note: pass tenantsAppClientId = '${app_id}' to infra/main.bicep too, or the next deployment removes the setting."
else
  log "TENANTS_APP_CLIENT_ID=${app_id}"
  log "          set it with the infra/main.bicep parameter: param tenantsAppClientId = '${app_id}'"
fi

if [[ "$check" == true ]]; then
  if ((missing > 0)); then
    log "missing   ${missing} item(s) above: run without --check to add them."
    exit 1
  fi
  log "ok        app ${app_id} is ready to sign in as the managed identity ${principal_id}"
else
  log "done: onboard each customer tenant with: scripts/onboard-tenant.sh --app-id ${app_id} ${flags[*]}"
fi
