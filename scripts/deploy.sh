#!/usr/bin/env bash
# Deploy caguard: provision infra/main.bicep into a resource group, build the app (make build),
# package dist/ and publish it.
#
# How it publishes depends on the template's hostingPlan (its hostingPlan output):
#   flex  the Flex Consumption deployment endpoint (az functionapp deployment source config-zip),
#         with your Entra sign-in; the platform stores the package in the app-package container with
#         the app's own identity and restarts the app.
#   ep1   the app runs from a package blob (WEBSITE_RUN_FROM_PACKAGE, read with its managed
#         identity): upload dist/ as a zip to that blob with your Entra sign-in, restart the app, and
#         sync its triggers.
# No keys or publishing passwords are used either way.

# mapfile and other bash 4 features below; macOS still ships bash 3.2 as /bin/bash.
# Written for any sh, so that an old bash or another shell gets this message rather than a syntax error.
if [ -z "${BASH_VERSION:-}" ] || [ "${BASH_VERSINFO:-0}" -lt 4 ]; then
  echo "error: $(basename "$0") needs bash 4 or later, found ${BASH_VERSION:-another shell}." >&2
  echo "       On macOS: brew install bash, then run: \"\$(brew --prefix)/bin/bash\" $0 ..." >&2
  exit 1
fi
set -euo pipefail

usage() {
  cat <<EOF
Usage: $(basename "$0") -g <resource-group> [options]

Provisions infra/main.bicep, builds the handler (make build) and publishes dist/ to the Function App.

  -g, --resource-group NAME   resource group to deploy into (required)
  -l, --location REGION       create the resource group in REGION if it does not exist
  -p, --parameters FILE       Bicep parameters file (default: infra/main.bicepparam)
  -n, --name NAME             deployment name (default: caguard)
      --skip-infra            publish the app only; read the outputs of the last deployment NAME
  -h, --help                  show this help

Environment:
  CAGUARD_ALERT_WEBHOOK_URL        alert webhook read by the parameters file (never printed)
  CAGUARD_DEPLOYER_OBJECT_ID       ep1 only: object id that gets upload rights on the package
  CAGUARD_DEPLOYER_PRINCIPAL_TYPE  container; default: the signed-in user or service principal
                                   (User|ServicePrincipal|Group)

Requires: bash 4 or later; Azure CLI 2.60 or later (signed in with az login; its Bicep support
compiles the files, and it publishes to Flex Consumption); Go and make (make build); zip and unzip.
The signed-in account needs Owner (or Contributor plus User Access Administrator) on the resource
group, because the template creates role assignments; publishing needs Contributor (or Website
Contributor) on the Function App.
EOF
}

log() { printf '==> %s\n' "$*"; }
die() {
  printf 'error: %s\n' "$*" >&2
  exit 1
}

repo_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$repo_root"

resource_group=""
location=""
params_file="infra/main.bicepparam"
deployment_name="caguard"
skip_infra=false
while (($# > 0)); do
  case "$1" in
    -g | --resource-group)
      resource_group="${2:?$1 needs a value}"
      shift
      ;;
    -l | --location)
      location="${2:?$1 needs a value}"
      shift
      ;;
    -p | --parameters)
      params_file="${2:?$1 needs a value}"
      shift
      ;;
    -n | --name)
      deployment_name="${2:?$1 needs a value}"
      shift
      ;;
    --skip-infra) skip_infra=true ;;
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
if [[ -z "$resource_group" ]]; then
  usage >&2
  exit 2
fi

# --- prerequisites ---
for tool in az make go zip unzip; do
  command -v "$tool" >/dev/null 2>&1 || die "'$tool' is not installed (see --help)"
done
if [[ "$skip_infra" != true ]]; then
  az_version="$(az version --query '"azure-cli"' -o tsv 2>/dev/null || true)"
  min_az="2.60.0"
  if [[ -z "$az_version" || "$(printf '%s\n%s\n' "$min_az" "$az_version" | sort -V | head -n1)" != "$min_az" ]]; then
    die "Azure CLI ${min_az} or later is needed for .bicepparam files and Flex Consumption (found: ${az_version:-unknown}); run 'az upgrade'"
  fi
fi
account="$(az account show --query '[name, id, user.type, user.name]' -o tsv 2>/dev/null)" ||
  die "not signed in: run 'az login' (and 'az account set -s <subscription>')"
mapfile -t account_fields < <(tr '\t' '\n' <<<"$account")
log "subscription ${account_fields[0]} (${account_fields[1]})"
[[ "$skip_infra" == true || -f "$params_file" ]] || die "parameters file not found: $params_file"

# --- infrastructure ---
if [[ "$skip_infra" != true ]]; then
  if [[ "$(az group exists --name "$resource_group")" != "true" ]]; then
    [[ -n "$location" ]] || die "resource group $resource_group does not exist; pass -l <region> to create it"
    log "creating resource group $resource_group in $location"
    az group create --name "$resource_group" --location "$location" --output none
  fi

  # Who may upload the package blob on the ep1 plan (read by the parameters file through
  # readEnvironmentVariable; the template ignores it on flex).
  if [[ -z "${CAGUARD_DEPLOYER_OBJECT_ID:-}" ]]; then
    case "${account_fields[2]}" in
      user)
        CAGUARD_DEPLOYER_OBJECT_ID="$(az ad signed-in-user show --query id -o tsv 2>/dev/null || true)"
        CAGUARD_DEPLOYER_PRINCIPAL_TYPE="${CAGUARD_DEPLOYER_PRINCIPAL_TYPE:-User}"
        ;;
      servicePrincipal)
        CAGUARD_DEPLOYER_OBJECT_ID="$(az ad sp show --id "${account_fields[3]}" --query id -o tsv 2>/dev/null || true)"
        CAGUARD_DEPLOYER_PRINCIPAL_TYPE="${CAGUARD_DEPLOYER_PRINCIPAL_TYPE:-ServicePrincipal}"
        ;;
    esac
    if [[ -z "${CAGUARD_DEPLOYER_OBJECT_ID:-}" ]]; then
      printf 'warning: could not tell the signed-in object id. On the ep1 plan, set CAGUARD_DEPLOYER_OBJECT_ID\n' >&2
      printf '         or grant yourself Storage Blob Data Contributor on the package container\n' >&2
    fi
  fi
  export CAGUARD_DEPLOYER_OBJECT_ID="${CAGUARD_DEPLOYER_OBJECT_ID:-}"
  export CAGUARD_DEPLOYER_PRINCIPAL_TYPE="${CAGUARD_DEPLOYER_PRINCIPAL_TYPE:-User}"
  case "$CAGUARD_DEPLOYER_PRINCIPAL_TYPE" in
    User | ServicePrincipal | Group) ;;
    *) die "CAGUARD_DEPLOYER_PRINCIPAL_TYPE must be User, ServicePrincipal or Group, got '${CAGUARD_DEPLOYER_PRINCIPAL_TYPE}'" ;;
  esac

  log "deploying infra/main.bicep with $params_file (deployment $deployment_name)"
  az deployment group create \
    --resource-group "$resource_group" \
    --name "$deployment_name" \
    --template-file infra/main.bicep \
    --parameters "$params_file" \
    --output none
fi

# Outputs of the deployment, in this order. az prints a list one value per line (and a null as
# "None"), so each output is checked: a failed or older deployment must stop the script here rather
# than publish to an app named "None".
output_names=(functionAppName hostingPlan storageAccountName packageContainerName packageBlobName
  identityPrincipalId diagnosticsAuthorizationRuleId auditEventHubName functionAppHostName)
outputs_query="[$(printf 'properties.outputs.%s.value,' "${output_names[@]}" | sed 's/,$//')]"
outputs="$(az deployment group show --resource-group "$resource_group" --name "$deployment_name" \
  --query "$outputs_query" -o tsv)" || die "cannot read the outputs of deployment $deployment_name in $resource_group"
mapfile -t out < <(tr '\t' '\n' <<<"$outputs")
((${#out[@]} == ${#output_names[@]})) ||
  die "deployment $deployment_name has unexpected outputs (${#out[@]} values for ${#output_names[@]} outputs); deploy the infrastructure first"
for i in "${!output_names[@]}"; do
  if [[ -z "${out[$i]}" || "${out[$i]}" == "None" ]]; then
    state="$(az deployment group show --resource-group "$resource_group" --name "$deployment_name" \
      --query properties.provisioningState -o tsv 2>/dev/null || true)"
    die "deployment $deployment_name (state: ${state:-unknown}) has no output ${output_names[$i]}; deploy the infrastructure again without --skip-infra"
  fi
done
app_name="${out[0]}"
hosting_plan="${out[1]}"
storage_account="${out[2]}"
package_container="${out[3]}"
package_blob="${out[4]}"
principal_id="${out[5]}"
diagnostics_rule_id="${out[6]}"
audit_hub="${out[7]}"
app_host="${out[8]}"
case "$hosting_plan" in
  flex | ep1) log "Function App $app_name on the $hosting_plan plan" ;;
  *) die "deployment $deployment_name names an unknown hosting plan '$hosting_plan'" ;;
esac

# --- build and package ---
log "building (make build)"
make build
[[ -f dist/host.json ]] || die "dist/host.json is missing after make build"
[[ -x dist/handler ]] || die "dist/handler is missing or not executable after make build"

work_dir="$(mktemp -d)"
trap 'rm -rf "$work_dir"' EXIT
package="$work_dir/caguard.zip"
# host.json at the root of the zip, one folder per function beside it, the handler with its
# executable bit (zip keeps Unix modes; the host runs the handler straight from the package).
(cd dist && zip -q -r -X "$package" .)

listing="$(unzip -Z1 "$package")"
grep -qx 'host.json' <<<"$listing" || die "package has no host.json at its root"
grep -qx 'handler' <<<"$listing" || die "package has no handler at its root"
functions=0
for fn_json in dist/*/function.json; do
  [[ -e "$fn_json" ]] || continue
  grep -qxF "${fn_json#dist/}" <<<"$listing" || die "package lacks ${fn_json#dist/}"
  functions=$((functions + 1))
done
((functions > 0)) || die "dist/ holds no function folders"
[[ "$(unzip -Z "$package" handler | awk '{ print $1; exit }')" == -rwx* ]] ||
  die "handler lost its executable bit in the package"
log "packaged $(basename "$package"): host.json, handler, ${functions} function(s), $(du -h "$package" | cut -f1)"

# --- publish ---
# A role assignment made by the deployment above can take a few minutes to apply, so each publishing
# path retries a refusal a few times.
publish_flex() {
  log "publishing to $app_name through the Flex Consumption deployment endpoint"
  local attempt=1
  # The platform writes the package into the app-package container with the app's identity, restarts
  # the app, syncs its triggers, and the CLI then waits for the host to report healthy.
  until az functionapp deployment source config-zip \
    --resource-group "$resource_group" \
    --name "$app_name" \
    --src "$package" \
    --only-show-errors \
    --output none; do
    if ((attempt >= 4)); then
      die "publishing failed, or the host did not report healthy afterwards (see the messages above and the app's logs in Application Insights). Check that you may deploy to $app_name (Contributor or Website Contributor) and that its identity holds Storage Blob Data Owner on ${storage_account}"
    fi
    log "publishing refused (attempt ${attempt}); waiting 60s for role assignments to apply"
    sleep 60
    attempt=$((attempt + 1))
  done
}

publish_ep1() {
  log "uploading to ${storage_account}/${package_container}/${package_blob}"
  local attempt=1
  until az storage blob upload \
    --auth-mode login \
    --account-name "$storage_account" \
    --container-name "$package_container" \
    --name "$package_blob" \
    --file "$package" \
    --content-type application/zip \
    --overwrite true \
    --only-show-errors \
    --output none; do
    if ((attempt >= 6)); then
      die "upload failed; the signed-in account needs Storage Blob Data Contributor on container ${package_container} of ${storage_account}"
    fi
    log "upload refused (attempt ${attempt}); waiting 30s for the role assignment to apply"
    sleep 30
    attempt=$((attempt + 1))
  done

  log "restarting $app_name so it loads the new package"
  az functionapp restart --resource-group "$resource_group" --name "$app_name" --output none

  log "syncing triggers"
  az resource invoke-action \
    --resource-group "$resource_group" \
    --resource-type Microsoft.Web/sites \
    --name "$app_name" \
    --action syncfunctiontriggers \
    --output none
}

if [[ "$hosting_plan" == flex ]]; then
  publish_flex
else
  publish_ep1
fi

cat <<EOF

Deployed ${app_name} (https://${app_host}).

Next steps, once per tenant:
  1. Grant the managed identity its Microsoft Graph permissions (Privileged Role Administrator):
       scripts/grant-graph-permissions.sh ${principal_id}
     add --remediate when REMEDIATION_MODE is remediate, --details for names and sign-in activity
     of excluded accounts.
  2. Stream Entra audit logs to the event hub (see infra/tenant-diagnostics.bicep for who may run it):
       az deployment tenant create --name caguard-entra-diagnostics --location <region> \\
         --template-file infra/tenant-diagnostics.bicep \\
         --parameters eventHubAuthorizationRuleId='${diagnostics_rule_id}' eventHubName='${audit_hub}'
  3. Check the control on demand (the function key is a secret, so it is not printed here):
       az functionapp function keys list -g ${resource_group} -n ${app_name} --function-name Evaluate
       curl -H "x-functions-key: <key>" https://${app_host}/api/Evaluate
EOF
