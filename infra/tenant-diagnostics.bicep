// caguard: Microsoft Entra diagnostic setting that streams the tenant's AuditLogs to the audit event
// hub created by infra/main.bicep. This is what wakes the AuditLogEvents function seconds after a
// Conditional Access policy changes (the nightly sweep works without it, only later).
//
// Deploy (tenant scope):
//   az deployment tenant create --name caguard-entra-diagnostics --location <region> \
//     --template-file infra/tenant-diagnostics.bicep \
//     --parameters eventHubAuthorizationRuleId=<diagnosticsAuthorizationRuleId output of main.bicep>
//
// Who may deploy it. The signed-in principal needs all three:
//   1. Microsoft Entra role Security Administrator or Global Administrator: writing the tenant's
//      diagnostic settings (microsoft.aadiam) is an Entra operation.
//   2. Azure RBAC at the tenant root scope "/" that allows Microsoft.Resources/deployments/write,
//      which nobody holds by default. A Global Administrator first elevates access (Entra admin
//      center > Properties > Access management for Azure resources), grants a role at "/" (for
//      example `az role assignment create --assignee <object id> --role Owner --scope /`), deploys,
//      then removes that assignment and the elevated access again.
//   3. Microsoft.EventHub/namespaces/authorizationRules/listKeys/action on the entra-diagnostics rule
//      (for example Contributor on caguard's resource group), which Azure Monitor requires of whoever
//      points a diagnostic setting at an event hub.
// Without the tenant-root deployment right, create the same setting by hand in the Entra admin center
// (Monitoring & health > Diagnostic settings: category AuditLogs, "Stream to an event hub",
// the audit namespace, event hub insights-logs-auditlogs, policy entra-diagnostics); that needs only
// items 1 and 3.
//
// A tenant holds at most five Entra diagnostic settings; this adds one, sending AuditLogs only.

targetScope = 'tenant'

@description('Name of the diagnostic setting in Microsoft Entra ID.')
@minLength(1)
param diagnosticSettingName string = 'caguard-auditlogs'

@description('Resource id of the namespace authorization rule (the diagnosticsAuthorizationRuleId output of main.bicep).')
param eventHubAuthorizationRuleId string

@description('Event hub that receives the logs (the auditEventHubName output of main.bicep). Naming it keeps Azure Monitor from creating hubs of its own.')
param eventHubName string = 'insights-logs-auditlogs'

resource auditLogsToEventHub 'microsoft.aadiam/diagnosticSettings@2017-04-01' = {
  name: diagnosticSettingName
  properties: {
    eventHubAuthorizationRuleId: eventHubAuthorizationRuleId
    eventHubName: eventHubName
    logs: [
      {
        category: 'AuditLogs'
        enabled: true
      }
    ]
  }
}

@description('Resource id of the diagnostic setting.')
output diagnosticSettingId string = auditLogsToEventHub.id
