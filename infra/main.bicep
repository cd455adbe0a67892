// caguard: the Azure resources that run the Conditional Access guard in one resource group.
//
// Deploy:   az deployment group create -g <rg> -f infra/main.bicep -p infra/main.bicepparam
//           (scripts/deploy.sh does this, then builds and publishes the app package)
// Then:     scripts/grant-graph-permissions.sh <identityPrincipalId> [--remediate]
//           infra/tenant-diagnostics.bicep with <diagnosticsAuthorizationRuleId> (see that file)
//
// Hosting plan: Elastic Premium (EP1) on Linux, not Flex Consumption.
//   Flex Consumption's documented language stacks are .NET isolated, Java, Node.js, PowerShell and
//   Python; custom handlers are not among them, so this template uses the plan where custom handlers
//   on Linux are documented and supported. EP1 also keeps one instance warm, so an audit event is
//   handled in seconds rather than after a cold start.
//
// No keys in app settings (only ALERT_WEBHOOK_URL, if set, is sensitive: it may be passed as a Key
// Vault reference instead):
//   - AzureWebJobsStorage is identity-based (AzureWebJobsStorage__accountName + managed identity) and
//     the storage account refuses shared keys.
//   - Elastic Premium normally keeps the app content on an Azure Files share, whose connection setting
//     (WEBSITE_CONTENTAZUREFILECONNECTIONSTRING) must hold an account key. This app is created without
//     that share, the documented way to avoid it: it runs from a package blob
//     (WEBSITE_RUN_FROM_PACKAGE = blob URL) that the function's identity reads. scripts/deploy.sh
//     uploads the package there and restarts the app; Kudu zip deploy is not used.
//   - The audit Event Hub trigger and the optional alert Event Hub use the managed identity.
//   - Application Insights takes telemetry only from Entra-authenticated senders.
//   The one shared-access key in use is the Event Hubs authorization rule that the Entra diagnostic
//   setting needs (see "Event Hubs" below); the namespace's default RootManageSharedAccessKey rule
//   exists too, as on every namespace, and nothing uses it.

targetScope = 'resourceGroup'

// ---------------------------------------------------------------------------------------------
// Parameters
// ---------------------------------------------------------------------------------------------

@description('Azure region for every resource.')
param location string = resourceGroup().location

@description('Prefix of every resource name: 2 to 10 lowercase letters or digits, starting with a letter.')
@minLength(2)
@maxLength(10)
param namePrefix string = 'caguard'

@description('Tags applied to every resource.')
param tags object = {
  workload: 'caguard'
}

@description('Redundancy of the Functions runtime storage account.')
@allowed([
  'Standard_LRS'
  'Standard_ZRS'
  'Standard_GRS'
  'Standard_GZRS'
])
param storageSku string = 'Standard_LRS'

@description('Elastic Premium plan size.')
@allowed([
  'EP1'
  'EP2'
  'EP3'
])
param planSku string = 'EP1'

// One instance by default: the audit stream is small, and a single instance serialises every
// reconcile in-process, so two instances can never both create the managed policy at once.
@description('Most instances the plan may scale out to.')
@minValue(1)
@maxValue(20)
param maximumElasticWorkerCount int = 1

@description('Days the Log Analytics workspace keeps data.')
@minValue(30)
@maxValue(730)
param logRetentionDays int = 90

// --- caguard settings (see handler/config/config.go) ---

@description('BREAK_GLASS_USER_IDS: comma-separated object ids of the approved break-glass user accounts.')
param breakGlassUserIds string = ''

@description('BREAK_GLASS_GROUP_IDS: comma-separated object ids of the approved break-glass groups.')
param breakGlassGroupIds string = ''

@description('REMEDIATION_MODE: alert only reports; remediate also restores the managed policy in report-only state (needs Policy.ReadWrite.ConditionalAccess).')
@allowed([
  'alert'
  'remediate'
])
param remediationMode string = 'alert'

@description('MANAGED_POLICY_NAME: display name of the Conditional Access policy that caguard owns.')
@minLength(1)
@maxLength(256)
param managedPolicyName string = 'caguard: require MFA for Azure management'

@description('SWEEP_SCHEDULE: NCRONTAB schedule (six fields, UTC) of the NightlySweep function.')
param sweepSchedule string = '0 30 2 * * *'

@description('TARGET_APP_IDS: comma-separated application ids the policy must cover. Empty: Windows Azure Service Management API only.')
param targetAppIds string = ''

@description('CUSTOM_CONTROLS_COUNT_AS_MFA: whether a custom control in a grant counts as MFA.')
param customControlsCountAsMfa bool = false

@description('GRAPH_BASE_URL: Microsoft Graph root (change only for a national cloud).')
param graphBaseUrl string = 'https://graph.microsoft.com/v1.0'

@description('INVOCATION_TIMEOUT: deadline of one reconcile, a Go duration below host.json functionTimeout (10 minutes).')
param invocationTimeout string = '9m'

@description('GRAPH_RETRY_BUDGET: total time spent retrying throttled Graph calls, a Go duration.')
param graphRetryBudget string = '60s'

@description('LOG_LEVEL of the handler.')
@allowed([
  'debug'
  'info'
  'warn'
  'error'
])
param logLevel string = 'info'

// --- Event Hubs ---

@description('AUDIT_EVENTHUB_NAME: event hub that the Entra diagnostic setting writes AuditLogs to.')
param auditEventHubName string = 'insights-logs-auditlogs'

@description('AUDIT_EVENTHUB_CONSUMER_GROUP: consumer group of the AuditLogEvents trigger.')
param auditConsumerGroupName string = 'caguard'

@description('Partitions of the audit event hub (fixed once created on the Standard tier).')
@minValue(1)
@maxValue(32)
param auditPartitionCount int = 2

@description('Days the audit event hub keeps events (1 to 7 on the Standard tier).')
@minValue(1)
@maxValue(7)
param auditRetentionDays int = 3

@description('Create an Event Hubs namespace and hub for alerts and set ALERT_EVENTHUB_NAMESPACE / ALERT_EVENTHUB_NAME.')
param deployAlertEventHub bool = false

@description('ALERT_EVENTHUB_NAME when deployAlertEventHub is true.')
param alertEventHubName string = 'caguard-alerts'

@description('ALERT_WEBHOOK_URL: optional https webhook that receives alerts. Treated as a secret (a webhook URL often carries a key). A Key Vault reference, @Microsoft.KeyVault(SecretUri=...), also works once the managed identity may read that secret.')
@secure()
param alertWebhookUrl string = ''

// --- deployment ---

@description('Object id of the user or service principal that uploads the app package (scripts/deploy.sh). It gets Storage Blob Data Contributor on the package container only. Empty: grant that role yourself.')
param deployerPrincipalId string = ''

@description('Kind of deployerPrincipalId: User, ServicePrincipal or Group.')
param deployerPrincipalType string = 'User'

// ---------------------------------------------------------------------------------------------
// Names and constants
// ---------------------------------------------------------------------------------------------

var suffix = uniqueString(resourceGroup().id, namePrefix)
var storageAccountName = toLower(take('${namePrefix}${suffix}', 24))
var identityName = '${namePrefix}-id-${suffix}'
var workspaceName = '${namePrefix}-log-${suffix}'
var appInsightsName = '${namePrefix}-appi-${suffix}'
var planName = '${namePrefix}-plan-${suffix}'
// At most 32 characters (10 + 6 + 13 = 29), so the Functions host id derived from it stays unique.
var functionAppName = '${namePrefix}-func-${suffix}'
var auditNamespaceName = '${namePrefix}-audit-${suffix}'
var alertNamespaceName = '${namePrefix}-alert-${suffix}'
var diagnosticsRuleName = 'entra-diagnostics'
var packageContainerName = 'app-package'
var packageBlobName = 'caguard.zip'

// Built-in role definition ids.
var roleStorageBlobDataOwner = 'b7e6dc6d-f1e8-4753-8033-0f276bb0955b'
var roleStorageBlobDataContributor = 'ba92f5b4-2d11-453d-a403-e96b0029c9fe'
var roleStorageQueueDataContributor = '974c5e8b-45b9-4653-ba55-5f855dd0fb88'
var roleStorageTableDataContributor = '0a9a7e1f-b9d0-4cc4-a60d-0319b160aaa3'
var roleMonitoringMetricsPublisher = '3913510d-42f4-4e42-8a64-420c390055eb'
var roleEventHubsDataReceiver = 'a638d3c7-ab3a-418d-83e6-5f17a39d4fde'
var roleEventHubsDataSender = '2b629674-e913-4c01-ae53-ef4638d8f975'

// ---------------------------------------------------------------------------------------------
// Identity
// ---------------------------------------------------------------------------------------------

// User-assigned, so its service principal (and its Microsoft Graph app roles) outlives the Function
// App: the app can be deleted and recreated without granting the permissions again.
resource identity 'Microsoft.ManagedIdentity/userAssignedIdentities@2023-01-31' = {
  name: identityName
  location: location
  tags: tags
}

// ---------------------------------------------------------------------------------------------
// Storage for the Functions runtime and the app package
// ---------------------------------------------------------------------------------------------

resource storage 'Microsoft.Storage/storageAccounts@2023-05-01' = {
  name: storageAccountName
  location: location
  tags: tags
  kind: 'StorageV2'
  sku: {
    name: storageSku
  }
  properties: {
    accessTier: 'Hot'
    allowBlobPublicAccess: false
    allowCrossTenantReplication: false
    allowSharedKeyAccess: false
    defaultToOAuthAuthentication: true
    minimumTlsVersion: 'TLS1_2'
    supportsHttpsTrafficOnly: true
    publicNetworkAccess: 'Enabled'
    networkAcls: {
      defaultAction: 'Allow'
      bypass: 'AzureServices'
    }
  }
}

resource blobService 'Microsoft.Storage/storageAccounts/blobServices@2023-05-01' = {
  parent: storage
  name: 'default'
}

resource packageContainer 'Microsoft.Storage/storageAccounts/blobServices/containers@2023-05-01' = {
  parent: blobService
  name: packageContainerName
  properties: {
    publicAccess: 'None'
  }
}

// Host storage (AzureWebJobsStorage): blobs (keys, leases, Event Hubs checkpoints, the package),
// queues and tables, as the identity-based host storage connection requires.
resource storageRoleAssignments 'Microsoft.Authorization/roleAssignments@2022-04-01' = [
  for roleId in [
    roleStorageBlobDataOwner
    roleStorageQueueDataContributor
    roleStorageTableDataContributor
  ]: {
    name: guid(storage.id, identity.id, roleId)
    scope: storage
    properties: {
      roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roleId)
      principalId: identity.properties.principalId
      principalType: 'ServicePrincipal'
    }
  }
]

// Lets scripts/deploy.sh upload the package with its Entra sign-in (shared keys are off).
resource deployerPackageWriter 'Microsoft.Authorization/roleAssignments@2022-04-01' = if (!empty(deployerPrincipalId)) {
  name: guid(packageContainer.id, deployerPrincipalId, roleStorageBlobDataContributor)
  scope: packageContainer
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roleStorageBlobDataContributor)
    principalId: deployerPrincipalId
    principalType: deployerPrincipalType
  }
}

// ---------------------------------------------------------------------------------------------
// Monitoring
// ---------------------------------------------------------------------------------------------

resource workspace 'Microsoft.OperationalInsights/workspaces@2023-09-01' = {
  name: workspaceName
  location: location
  tags: tags
  properties: {
    sku: {
      name: 'PerGB2018'
    }
    retentionInDays: logRetentionDays
    features: {
      enableLogAccessUsingOnlyResourcePermissions: true
    }
  }
}

resource appInsights 'Microsoft.Insights/components@2020-02-02' = {
  name: appInsightsName
  location: location
  tags: tags
  kind: 'web'
  properties: {
    Application_Type: 'web'
    WorkspaceResourceId: workspace.id
    IngestionMode: 'LogAnalytics'
    // Only Entra-authenticated telemetry is accepted: the Functions host signs in with the managed
    // identity (APPLICATIONINSIGHTS_AUTHENTICATION_STRING below), so the connection string is a
    // locator, not a credential.
    DisableLocalAuth: true
  }
}

resource appInsightsPublisher 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(appInsights.id, identity.id, roleMonitoringMetricsPublisher)
  scope: appInsights
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roleMonitoringMetricsPublisher)
    principalId: identity.properties.principalId
    principalType: 'ServicePrincipal'
  }
}

// ---------------------------------------------------------------------------------------------
// Event Hubs
// ---------------------------------------------------------------------------------------------
//
// Local (SAS) authentication stays ENABLED on the audit namespace, deliberately. A Microsoft Entra
// diagnostic setting streams to Event Hubs only through a namespace shared access policy
// (eventHubAuthorizationRuleId); there is no managed-identity or RBAC option for it, and Azure
// Monitor documents that the policy needs Manage, Send and Listen. With disableLocalAuth = true the
// audit logs would never arrive. So:
//   - one dedicated rule, entra-diagnostics, exists only for the diagnostic setting; nothing else
//     uses a key, no template reads one (no listKeys), and no connection string is stored anywhere;
//   - caguard itself reads with the managed identity (Azure Event Hubs Data Receiver on the hub);
//   - the namespace holds nothing but the audit stream, so a leaked key can at worst forge, delay or
//     drop audit events. caguard treats an event only as a hint and re-reads Graph, and the nightly
//     sweep runs regardless, so a forged event cannot change what it decides;
//   - the optional alert hub lives in its own namespace with local authentication disabled.
// The rule's keys can be rotated with `az eventhubs namespace authorization-rule keys renew`; the
// diagnostic setting refers to the rule, not to a key, but check afterwards that events still arrive.

resource auditNamespace 'Microsoft.EventHub/namespaces@2024-01-01' = {
  name: auditNamespaceName
  location: location
  tags: tags
  sku: {
    name: 'Standard'
    tier: 'Standard'
    capacity: 1
  }
  properties: {
    disableLocalAuth: false // required by the Entra diagnostic setting, see above
    minimumTlsVersion: '1.2'
    publicNetworkAccess: 'Enabled'
    isAutoInflateEnabled: false
  }
}

resource auditHub 'Microsoft.EventHub/namespaces/eventhubs@2024-01-01' = {
  parent: auditNamespace
  name: auditEventHubName
  properties: {
    partitionCount: auditPartitionCount
    messageRetentionInDays: auditRetentionDays
  }
}

resource auditConsumerGroup 'Microsoft.EventHub/namespaces/eventhubs/consumergroups@2024-01-01' = {
  parent: auditHub
  name: auditConsumerGroupName
  properties: {
    userMetadata: 'caguard AuditLogEvents trigger'
  }
}

// Namespace-level rule (the kind a diagnostic setting refers to) for the Entra diagnostic setting
// only. Manage, Send and Listen are what Azure Monitor documents for streaming to Event Hubs.
resource diagnosticsRule 'Microsoft.EventHub/namespaces/authorizationRules@2024-01-01' = {
  parent: auditNamespace
  name: diagnosticsRuleName
  properties: {
    rights: [
      'Manage'
      'Send'
      'Listen'
    ]
  }
}

resource auditReceiver 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(auditHub.id, identity.id, roleEventHubsDataReceiver)
  scope: auditHub
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roleEventHubsDataReceiver)
    principalId: identity.properties.principalId
    principalType: 'ServicePrincipal'
  }
}

resource alertNamespace 'Microsoft.EventHub/namespaces@2024-01-01' = if (deployAlertEventHub) {
  name: alertNamespaceName
  location: location
  tags: tags
  sku: {
    name: 'Standard'
    tier: 'Standard'
    capacity: 1
  }
  properties: {
    disableLocalAuth: true // consumers of alerts use Entra ID (Azure Event Hubs Data Receiver)
    minimumTlsVersion: '1.2'
    publicNetworkAccess: 'Enabled'
    isAutoInflateEnabled: false
  }
}

resource alertHub 'Microsoft.EventHub/namespaces/eventhubs@2024-01-01' = if (deployAlertEventHub) {
  parent: alertNamespace
  name: alertEventHubName
  properties: {
    partitionCount: 1
    messageRetentionInDays: 7
  }
}

resource alertSender 'Microsoft.Authorization/roleAssignments@2022-04-01' = if (deployAlertEventHub) {
  name: guid(alertHub.id, identity.id, roleEventHubsDataSender)
  scope: alertHub
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roleEventHubsDataSender)
    principalId: identity.properties.principalId
    principalType: 'ServicePrincipal'
  }
}

// "https://<namespace>.servicebus.windows.net:443/" -> "<namespace>.servicebus.windows.net", so the
// host name is right in every cloud. The alert namespace uses the same DNS suffix, derived from the
// audit namespace, which avoids reading a property of a resource that may not be deployed.
var auditNamespaceFqdn = split(split(auditNamespace.properties.serviceBusEndpoint, '/')[2], ':')[0]
var serviceBusDnsSuffix = substring(auditNamespaceFqdn, length(auditNamespaceName))
var alertNamespaceFqdn = deployAlertEventHub ? '${alertNamespaceName}${serviceBusDnsSuffix}' : ''

// ---------------------------------------------------------------------------------------------
// Function App
// ---------------------------------------------------------------------------------------------

resource plan 'Microsoft.Web/serverfarms@2023-12-01' = {
  name: planName
  location: location
  tags: tags
  kind: 'elastic'
  sku: {
    name: planSku
    tier: 'ElasticPremium'
  }
  properties: {
    reserved: true // Linux
    maximumElasticWorkerCount: maximumElasticWorkerCount
  }
}

var packageUrl = '${storage.properties.primaryEndpoints.blob}${packageContainerName}/${packageBlobName}'

resource functionApp 'Microsoft.Web/sites@2023-12-01' = {
  name: functionAppName
  location: location
  tags: tags
  kind: 'functionapp,linux'
  identity: {
    type: 'UserAssigned'
    userAssignedIdentities: {
      '${identity.id}': {}
    }
  }
  properties: {
    serverFarmId: plan.id
    reserved: true
    httpsOnly: true
    clientAffinityEnabled: false
    publicNetworkAccess: 'Enabled' // Evaluate is an HTTP function (function key required)
    keyVaultReferenceIdentity: identity.id
    siteConfig: {
      // A custom handler needs no language image: linuxFxVersion stays empty, as the Functions
      // stacks definition for "custom" specifies.
      ftpsState: 'Disabled'
      minTlsVersion: '1.2'
      scmMinTlsVersion: '1.2'
      http20Enabled: true
      // Scale decisions come from the Functions runtime, which reads Event Hubs with the app's own
      // identity; this also keeps scaling working if the namespace is later put behind a network.
      functionsRuntimeScaleMonitoringEnabled: true
      minimumElasticInstanceCount: 1
      functionAppScaleLimit: maximumElasticWorkerCount
      appSettings: [
        // --- Functions host ---
        {
          name: 'FUNCTIONS_EXTENSION_VERSION'
          value: '~4'
        }
        {
          name: 'FUNCTIONS_WORKER_RUNTIME'
          value: 'custom'
        }
        // Identity-based host storage. __accountName implies the public cloud's endpoints; in a
        // national cloud use __blobServiceUri, __queueServiceUri and __tableServiceUri instead.
        {
          name: 'AzureWebJobsStorage__accountName'
          value: storage.name
        }
        {
          name: 'AzureWebJobsStorage__credential'
          value: 'managedidentity'
        }
        {
          name: 'AzureWebJobsStorage__clientId'
          value: identity.properties.clientId
        }
        // No WEBSITE_CONTENTAZUREFILECONNECTIONSTRING / WEBSITE_CONTENTSHARE: the app runs from the
        // package blob, fetched with the user-assigned identity.
        {
          name: 'WEBSITE_RUN_FROM_PACKAGE'
          value: packageUrl
        }
        {
          name: 'WEBSITE_RUN_FROM_PACKAGE_BLOB_MI_RESOURCE_ID'
          value: identity.id
        }
        {
          name: 'APPLICATIONINSIGHTS_CONNECTION_STRING'
          value: appInsights.properties.ConnectionString
        }
        {
          name: 'APPLICATIONINSIGHTS_AUTHENTICATION_STRING'
          value: 'ClientId=${identity.properties.clientId};Authorization=AAD'
        }
        // --- AuditLogEvents trigger (connection "AuditEventHub", identity-based) ---
        {
          name: 'AUDIT_EVENTHUB_NAME'
          value: auditHub.name
        }
        {
          name: 'AUDIT_EVENTHUB_CONSUMER_GROUP'
          value: auditConsumerGroup.name
        }
        {
          name: 'AuditEventHub__fullyQualifiedNamespace'
          value: auditNamespaceFqdn
        }
        {
          name: 'AuditEventHub__credential'
          value: 'managedidentity'
        }
        {
          name: 'AuditEventHub__clientId'
          value: identity.properties.clientId
        }
        // --- NightlySweep trigger ---
        {
          name: 'SWEEP_SCHEDULE'
          value: sweepSchedule
        }
        // --- caguard handler (handler/config) ---
        {
          name: 'AZURE_TENANT_ID'
          value: tenant().tenantId
        }
        {
          name: 'AZURE_CLIENT_ID'
          value: identity.properties.clientId
        }
        {
          name: 'CAGUARD_SERVICE_PRINCIPAL_ID'
          value: identity.properties.principalId
        }
        {
          name: 'GRAPH_BASE_URL'
          value: graphBaseUrl
        }
        {
          name: 'GRAPH_RETRY_BUDGET'
          value: graphRetryBudget
        }
        {
          name: 'BREAK_GLASS_USER_IDS'
          value: breakGlassUserIds
        }
        {
          name: 'BREAK_GLASS_GROUP_IDS'
          value: breakGlassGroupIds
        }
        {
          name: 'TARGET_APP_IDS'
          value: targetAppIds
        }
        {
          name: 'CUSTOM_CONTROLS_COUNT_AS_MFA'
          value: string(customControlsCountAsMfa)
        }
        {
          name: 'REMEDIATION_MODE'
          value: remediationMode
        }
        {
          name: 'MANAGED_POLICY_NAME'
          value: managedPolicyName
        }
        {
          name: 'ALERT_EVENTHUB_NAMESPACE'
          value: alertNamespaceFqdn
        }
        {
          name: 'ALERT_EVENTHUB_NAME'
          value: deployAlertEventHub ? alertEventHubName : ''
        }
        {
          name: 'ALERT_WEBHOOK_URL'
          value: alertWebhookUrl
        }
        {
          name: 'INVOCATION_TIMEOUT'
          value: invocationTimeout
        }
        {
          name: 'LOG_LEVEL'
          value: logLevel
        }
      ]
    }
  }
  dependsOn: [
    // The host starts with its storage, Event Hubs and telemetry access already in place.
    storageRoleAssignments
    auditReceiver
    appInsightsPublisher
    alertSender
  ]
}

// Publishing happens through the package blob with Entra sign-in; no FTP or basic-auth Kudu access.
resource ftpBasicAuth 'Microsoft.Web/sites/basicPublishingCredentialsPolicies@2023-12-01' = {
  parent: functionApp
  name: 'ftp'
  properties: {
    allow: false
  }
}

resource scmBasicAuth 'Microsoft.Web/sites/basicPublishingCredentialsPolicies@2023-12-01' = {
  parent: functionApp
  name: 'scm'
  properties: {
    allow: false
  }
}

// ---------------------------------------------------------------------------------------------
// Outputs (no secrets)
// ---------------------------------------------------------------------------------------------

@description('Name of the Function App.')
output functionAppName string = functionApp.name

@description('Host name of the Function App (Evaluate: https://<host>/api/Evaluate).')
output functionAppHostName string = functionApp.properties.defaultHostName

@description('Object id of the managed identity service principal: pass it to scripts/grant-graph-permissions.sh.')
output identityPrincipalId string = identity.properties.principalId

@description('Client (application) id of the managed identity.')
output identityClientId string = identity.properties.clientId

@description('Resource id of the managed identity.')
output identityResourceId string = identity.id

@description('Audit Event Hubs namespace name.')
output eventHubNamespaceName string = auditNamespace.name

@description('Audit Event Hubs namespace host name.')
output eventHubNamespaceFqdn string = auditNamespaceFqdn

@description('Audit event hub name (eventHubName of the Entra diagnostic setting).')
output auditEventHubName string = auditHub.name

@description('Resource id of the authorization rule for the Entra diagnostic setting (eventHubAuthorizationRuleId of infra/tenant-diagnostics.bicep).')
output diagnosticsAuthorizationRuleId string = diagnosticsRule.id

@description('Alert Event Hubs namespace host name, empty when not deployed.')
output alertEventHubNamespaceFqdn string = alertNamespaceFqdn

@description('Storage account that holds the runtime state and the app package.')
output storageAccountName string = storage.name

@description('Blob container of the app package.')
output packageContainerName string = packageContainer.name

@description('Blob name of the app package (the app runs from this blob).')
output packageBlobName string = packageBlobName
