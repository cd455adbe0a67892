// caguard: the Azure resources that run the Conditional Access guard in one resource group.
//
// Deploy:   az deployment group create -g <rg> -f infra/main.bicep -p infra/main.bicepparam
//           (scripts/deploy.sh does this, then builds and publishes the app package)
// Then:     scripts/grant-graph-permissions.sh <identityPrincipalId> [--remediate] [--details]
//           (many tenants: scripts/setup-fleet-app.sh --principal-id <identityPrincipalId> in the home
//           tenant, then deploy again with tenantsAppClientId; README.md, "Many tenants")
//           infra/tenant-diagnostics.bicep with <diagnosticsAuthorizationRuleId> (see that file)
//
// Hosting plan (parameter hostingPlan):
//   flex (default)  Flex Consumption FC1, runtime "custom" 1.0, no always-ready instance. The guard works a
//                   few seconds a day, so it is billed for about nothing beyond the Event Hubs namespace;
//                   the price is a cold start (seconds) on the first event after an idle spell.
//                   Flex lists a "custom" runtime, version "1.0", with SKU FC1 in the Functions stacks data
//                   (the FunctionsStackFlexData shipped with Microsoft's Az.Functions module, and
//                   Get-AzFunctionAppFlexConsumptionRuntime), so a custom handler runs there.
//   ep1             Elastic Premium EP1 on Linux: one instance always warm, no cold start, about
//                   $155-175 a month (README.md, "Cost").
//   The Function App keeps its name across both, so switching plans on an existing deployment means
//   deleting the Function App first (a site cannot move between Elastic Premium and Flex); the
//   user-assigned identity, and with it the Microsoft Graph grants, stays.
//
// No keys in app settings (only ALERT_WEBHOOK_URL, if set, is sensitive: it may be passed as a Key
// Vault reference instead):
//   - AzureWebJobsStorage is identity-based (AzureWebJobsStorage__accountName and service URIs + the
//     user-assigned identity) and the storage account refuses shared keys. caguard's handler uses the
//     same settings for its single-writer blob lease and its record of the managed policy's id.
//   - flex: the platform keeps the app package in the app-package container and reads it with the
//     user-assigned identity (functionAppConfig.deployment). scripts/deploy.sh publishes through the
//     Flex deployment endpoint with the deployer's Entra sign-in.
//   - ep1: Elastic Premium normally keeps the app content on an Azure Files share, whose connection
//     setting (WEBSITE_CONTENTAZUREFILECONNECTIONSTRING) must hold an account key. This app is created
//     without that share, the documented way to avoid it: it runs from a package blob
//     (WEBSITE_RUN_FROM_PACKAGE = blob URL) that the function's identity reads. scripts/deploy.sh
//     uploads the package there and restarts the app; Kudu zip deploy is not used.
//   - The audit Event Hub trigger and the optional alert Event Hub use the managed identity.
//   - Application Insights takes telemetry only from Entra-authenticated senders.
//   The one shared-access key in use is the Event Hubs authorization rule that the Entra diagnostic
//   setting needs (see "Event Hubs" below); the namespace's default RootManageSharedAccessKey rule
//   exists too, as on every namespace, and nothing uses it.
//
// Microsoft Graph application permissions to grant the identity: infra/graph-permissions.json holds
// them, one set per mode (alert always; remediate; reviews; users and signIns for --details; licences for --licences), and is
// the single source of truth. scripts/grant-graph-permissions.sh grants them, the graphPermissions
// output below lists what this deployment needs, and tests keep the script and README.md equal to it.

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

@description('Hosting plan. flex: Flex Consumption FC1, billed per execution, no instance kept warm (default). ep1: Elastic Premium, one instance always warm (no cold start), about $155-175 a month.')
@allowed([
  'flex'
  'ep1'
])
param hostingPlan string = 'flex'

// Flex: memory of each instance, shared by the Functions host and the handler. The handler needs tens
// of MB; 512 MB keeps the billed GB-seconds (memory x active time) four times lower than the 2048 MB
// default. Raise it if the host reports running out of memory.
@description('flex only: instance memory in MB (512, 2048 or 4096).')
@allowed([
  512
  2048
  4096
])
param flexInstanceMemoryMB int = 512

// Flex scales each non-HTTP function, and the HTTP functions together, on instances of their own, and
// this maximum applies to each such group. 40 is the lowest value every Flex region accepts: the Flex
// stacks data (lowestMaximumInstanceCount 40), the Flex docs ("the lowest maximum scale is currently
// 40") and Microsoft's Flex Bicep sample (@minValue(40)) all set that floor, and values below it work
// only in a few regions, in preview. A lower cap buys caguard nothing: its runs can overlap on any
// count of instances, so writes are serialised by a blob lease, not by the process, and idle
// instances cost nothing on Flex. Go lower only where your region accepts it.
@description('flex only: most instances per function group, 40 by default (the floor every Flex region accepts); lower only where the region allows it.')
@minValue(1)
@maxValue(1000)
param flexMaximumInstanceCount int = 40

@description('ep1 only: Elastic Premium plan size.')
@allowed([
  'EP1'
  'EP2'
  'EP3'
])
param planSku string = 'EP1'

// One instance by default: the audit stream is small, and a single instance keeps the plan's cost at
// its floor.
@description('ep1 only: most instances the plan may scale out to.')
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

@description('TENANT_SWEEP_QUEUE: the Storage queue of the nightly fan-out (one message per registry tenant, read by TenantSweep); its poison queue is the same name with -poison. 3 to 56 lowercase letters, digits and single hyphens.')
@minLength(3)
@maxLength(56)
param tenantSweepQueueName string = 'caguard-tenant-sweep'

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

@description('EXCLUSION_REVIEW: off ignores access reviews; report lists each exclusion with its review status; require also fails exclusions whose review is overdue or missing.')
@allowed([
  'off'
  'report'
  'require'
])
param exclusionReview string = 'report'

@description('CONTROLS: the catalogue controls to judge, comma-separated ids or all; azure-management-mfa (the default) is the one caguard guards and restores.')
param controls string = 'azure-management-mfa'

@description('TENANTS_APP_CLIENT_ID: application id of the multi-tenant app registration caguard signs in as in each registry tenant, with this deployment\'s managed identity as its federated credential (scripts/setup-fleet-app.sh prints it). Empty (the default): the setting is not deployed, and caguard guards the single tenant as itself.')
param tenantsAppClientId string = ''

@description('EXCLUSION_REVIEW_GRACE_DAYS: days an exclusion may go without a completed access review before it counts as overdue.')
@minValue(0)
@maxValue(365)
param exclusionReviewGraceDays int = 14

@description('ALERT_WEBHOOK_FORMAT: body sent to ALERT_WEBHOOK_URL. auto picks by the URL (Teams, Slack, otherwise json).')
@allowed([
  'auto'
  'teams'
  'slack'
  'json'
])
param alertWebhookFormat string = 'auto'

// --- Event Hubs ---

@description('AUDIT_EVENTHUB_NAME: event hub that the Entra diagnostic setting writes AuditLogs to.')
param auditEventHubName string = 'insights-logs-auditlogs'

@description('AUDIT_EVENTHUB_CONSUMER_GROUP on the Standard tier: consumer group of the AuditLogEvents trigger. On Basic the trigger reads $Default and no group is created.')
param auditConsumerGroupName string = 'caguard'

// Basic is about half the price of Standard and is enough for a hub that only caguard reads: it allows
// exactly one consumer group ($Default) and one day of retention. Choose Standard when something else
// (a SIEM) reads the same hub and needs a consumer group of its own, or for more than a day of
// retention. The tier of an existing namespace can be raised from Basic to Standard in place.
@description('Tier of the audit Event Hubs namespace: Basic (default; $Default consumer group only, 1 day retention) or Standard.')
@allowed([
  'Basic'
  'Standard'
])
param eventHubSku string = 'Basic'

@description('Partitions of the audit event hub (fixed once created).')
@minValue(1)
@maxValue(32)
param auditPartitionCount int = 2

@description('Days the audit event hub keeps events: 1 to 7 on Standard; Basic keeps 1 whatever is set.')
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

@description('ep1 only: object id of the user or service principal that uploads the app package (scripts/deploy.sh). It gets Storage Blob Data Contributor on the package container only. Empty: grant that role yourself. On flex the platform writes the package with the app\'s own identity, so nobody else needs a storage role.')
param deployerPrincipalId string = ''

@description('Kind of deployerPrincipalId.')
@allowed([
  'User'
  'ServicePrincipal'
  'Group'
])
param deployerPrincipalType string = 'User'

// ---------------------------------------------------------------------------------------------
// Names and constants
// ---------------------------------------------------------------------------------------------

var suffix = uniqueString(resourceGroup().id, namePrefix)
var storageAccountName = toLower(take('${namePrefix}${suffix}', 24))
var identityName = '${namePrefix}-id-${suffix}'
var workspaceName = '${namePrefix}-log-${suffix}'
var appInsightsName = '${namePrefix}-appi-${suffix}'
var isFlex = hostingPlan == 'flex'
var isBasicHub = eventHubSku == 'Basic'
// The consumer group the AuditLogEvents trigger reads: $Default on Basic, caguard's own on Standard.
var auditTriggerConsumerGroup = isBasicHub ? '$Default' : auditConsumerGroupName
// Microsoft Graph permission sets, the single source of truth shared with
// scripts/grant-graph-permissions.sh and README.md (see that file).
var graphPermissionSets = loadJsonContent('graph-permissions.json').sets
// The catalogue controls that need a licence (handler/capolicy's Catalogue, Licence set: Entra ID
// P2); handler/config/permissions_infra_test.go holds this list to it. When CONTROLS enables one, or
// is all, the deployment needs the licences set to read the tenant's subscriptions. CONTROLS is read
// like the handler reads it: comma-separated, case and spaces ignored.
var licensedControlIds = [
  'user-risk-policy'
  'sign-in-risk-policy'
]
var deployedControlIds = split(toLower(replace(controls, ' ', '')), ',')
var controlsNeedLicences = contains(deployedControlIds, 'all') || !empty(intersection(deployedControlIds, licensedControlIds))
// The plan's name says its kind: an Elastic Premium plan cannot become a Flex plan in place.
var planName = isFlex ? '${namePrefix}-flex-${suffix}' : '${namePrefix}-plan-${suffix}'
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
var roleStorageTableDataContributor = '0a9a7e1f-b9d0-4cc4-a60d-0319b160aaa3'
var roleMonitoringMetricsPublisher = '3913510d-42f4-4e42-8a64-420c390055eb'
var roleEventHubsDataReceiver = 'a638d3c7-ab3a-418d-83e6-5f17a39d4fde'
var roleEventHubsDataSender = '2b629674-e913-4c01-ae53-ef4638d8f975'
var roleStorageQueueDataReader = '19e7f393-937e-4f77-808e-94535e297925'
var roleStorageQueueDataMessageProcessor = '8a0f0c08-91a1-4084-bc3d-661d67233fed'
var roleStorageQueueDataMessageSender = 'c6a89b2d-59bc-44d0-9896-0f6e12d7b80a'

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
    // Network: as narrow as Flex allows without a virtual network. The account must stay reachable
    // from the public endpoint: the Flex platform downloads the app package from app-package, and the
    // Functions host reaches AzureWebJobsStorage, from Microsoft's shared outbound addresses, which no
    // IP rule can name. defaultAction Deny with bypass AzureServices does not let them in (Azure
    // Functions issue 2486, May 2024; the Flex samples' issue 41, October 2024: publishing fails with
    // 403 until the app is VNet-integrated and its subnet allowed). What guards the account instead:
    // no shared keys (allowSharedKeyAccess false), Entra ID only, RBAC on the one identity, no public
    // blob access, TLS 1.2. Going narrower needs VNet integration plus a service endpoint or private
    // endpoints, which this template does not create. make lint-infra excludes KICS's two findings on
    // this block for that reason.
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

// The nightly fan-out: with a tenant registry, NightlySweep puts one message per tenant on the tenant
// sweep queue (its queue output) and TenantSweep, triggered by it, sweeps one tenant per message;
// TenantSweep writes what it gives up on, with the reason, to the poison queue (the name the queue
// extension uses for its own poison moves). Without a registry both queues stay empty. Both exist
// before the app starts, so that the identity needs no right to create queues.
resource queueService 'Microsoft.Storage/storageAccounts/queueServices@2023-05-01' = {
  parent: storage
  name: 'default'
}

resource tenantSweepQueue 'Microsoft.Storage/storageAccounts/queueServices/queues@2023-05-01' = {
  parent: queueService
  name: tenantSweepQueueName
}

resource tenantSweepPoisonQueue 'Microsoft.Storage/storageAccounts/queueServices/queues@2023-05-01' = {
  parent: queueService
  name: '${tenantSweepQueueName}-poison'
}

// Identity-based queue trigger and outputs (connection AzureWebJobsStorage, its __queueServiceUri):
// the Functions docs name Storage Queue Data Reader and Message Processor for a trigger and Message
// Sender for an output to an existing queue. Those three, rather than Storage Queue Data Contributor,
// because Contributor also lets the identity create, delete and clear queues, which nothing here
// needs: the template creates both queues. On the storage account, where the host also looks up the
// queues it listens to.
resource queueReader 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(storage.id, identity.id, roleStorageQueueDataReader)
  scope: storage
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roleStorageQueueDataReader)
    principalId: identity.properties.principalId
    principalType: 'ServicePrincipal'
  }
}

resource queueProcessor 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(storage.id, identity.id, roleStorageQueueDataMessageProcessor)
  scope: storage
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roleStorageQueueDataMessageProcessor)
    principalId: identity.properties.principalId
    principalType: 'ServicePrincipal'
  }
}

resource queueSender 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(storage.id, identity.id, roleStorageQueueDataMessageSender)
  scope: storage
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roleStorageQueueDataMessageSender)
    principalId: identity.properties.principalId
    principalType: 'ServicePrincipal'
  }
}

// Host storage (AzureWebJobsStorage). Storage Blob Data Owner covers what the Functions host keeps
// there (host keys, the primary-host and timer leases, Event Hubs checkpoints), the Flex app package
// in app-package, and caguard's own single-writer lease and managed-policy record. This is the set
// Microsoft's Flex Consumption samples grant by default (blob on, queue and table off); the queue
// roles below serve the nightly fan-out alone.
resource hostBlobOwner 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(storage.id, identity.id, roleStorageBlobDataOwner)
  scope: storage
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roleStorageBlobDataOwner)
    principalId: identity.properties.principalId
    principalType: 'ServicePrincipal'
  }
}

// ep1 only: runtime scale monitoring (functionsRuntimeScaleMonitoringEnabled, below) keeps its scale
// metrics in Table storage. On flex the platform scales the app itself; the host's optional diagnostic
// events table is then refused, and the host switches that feature off with one log line.
resource hostTableContributor 'Microsoft.Authorization/roleAssignments@2022-04-01' = if (!isFlex) {
  name: guid(storage.id, identity.id, roleStorageTableDataContributor)
  scope: storage
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roleStorageTableDataContributor)
    principalId: identity.properties.principalId
    principalType: 'ServicePrincipal'
  }
}

// ep1 only: lets scripts/deploy.sh upload the package blob with its Entra sign-in (shared keys are off).
resource deployerPackageWriter 'Microsoft.Authorization/roleAssignments@2022-04-01' = if (!isFlex && !empty(deployerPrincipalId)) {
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
    name: eventHubSku
    tier: eventHubSku
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
    // Basic allows one day at most.
    messageRetentionInDays: isBasicHub ? 1 : auditRetentionDays
  }
}

// Standard only: Basic allows no consumer group besides $Default, which every hub has.
resource auditConsumerGroup 'Microsoft.EventHub/namespaces/eventhubs/consumergroups@2024-01-01' = if (!isBasicHub) {
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

// Shapes follow Microsoft's Flex Consumption Bicep sample (azure-functions-flex-consumption-samples,
// IaC/bicep): serverfarm kind functionapp, SKU FC1 / FlexConsumption, reserved (Linux); site with
// functionAppConfig { deployment.storage, scaleAndConcurrency, runtime }, API version 2024-04-01.
resource plan 'Microsoft.Web/serverfarms@2024-04-01' = {
  name: planName
  location: location
  tags: tags
  kind: isFlex ? 'functionapp' : 'elastic'
  sku: isFlex
    ? {
        name: 'FC1'
        tier: 'FlexConsumption'
      }
    : {
        name: planSku
        tier: 'ElasticPremium'
      }
  properties: isFlex
    ? {
        reserved: true // Linux
      }
    : {
        reserved: true // Linux
        maximumElasticWorkerCount: maximumElasticWorkerCount
      }
}

var packageContainerUrl = '${storage.properties.primaryEndpoints.blob}${packageContainerName}'
var packageUrl = '${packageContainerUrl}/${packageBlobName}'

// Every app setting on both plans. handler/config/settings_infra_test.go holds this list to the
// settings the handler reads, so keep each entry's `name: '...'` on one line.
var commonAppSettings = [
  // --- Functions host ---
  // Identity-based host storage; caguard's handler reads the same settings for its lease and
  // managed-policy record. __accountName is the form Microsoft's Flex samples use, and with it set the
  // host does not hit its intermittent start-up failure to build a blob client from __blobServiceUri
  // alone (azure-functions-host issue 11787, May 2026). The service URIs, taken from the account, make
  // every endpoint right in any cloud, where __accountName alone implies the public cloud's DNS suffix.
  {
    name: 'AzureWebJobsStorage__accountName'
    value: storage.name
  }
  {
    name: 'AzureWebJobsStorage__blobServiceUri'
    value: storage.properties.primaryEndpoints.blob
  }
  {
    name: 'AzureWebJobsStorage__queueServiceUri'
    value: storage.properties.primaryEndpoints.queue
  }
  {
    name: 'AzureWebJobsStorage__tableServiceUri'
    value: storage.properties.primaryEndpoints.table
  }
  {
    name: 'AzureWebJobsStorage__credential'
    value: 'managedidentity'
  }
  {
    name: 'AzureWebJobsStorage__clientId'
    value: identity.properties.clientId
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
    value: auditTriggerConsumerGroup
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
  // --- the nightly fan-out: NightlySweep's queue output, TenantSweep's trigger and poison output ---
  {
    name: 'TENANT_SWEEP_QUEUE'
    value: tenantSweepQueue.name
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
    name: 'EXCLUSION_REVIEW'
    value: exclusionReview
  }
  {
    name: 'CONTROLS'
    value: controls
  }
  {
    name: 'EXCLUSION_REVIEW_GRACE_DAYS'
    value: string(exclusionReviewGraceDays)
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
    name: 'ALERT_WEBHOOK_FORMAT'
    value: alertWebhookFormat
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

// ep1 only. Flex Consumption deprecates each of these: the runtime and its version live in
// functionAppConfig.runtime, the package in functionAppConfig.deployment. The settings test checks
// that none of them appears anywhere else in this file.
var ep1OnlyAppSettings = [
  {
    name: 'FUNCTIONS_EXTENSION_VERSION'
    value: '~4'
  }
  {
    name: 'FUNCTIONS_WORKER_RUNTIME'
    value: 'custom'
  }
  // No WEBSITE_CONTENTAZUREFILECONNECTIONSTRING / WEBSITE_CONTENTSHARE: the app runs from the package
  // blob, fetched with the user-assigned identity.
  {
    name: 'WEBSITE_RUN_FROM_PACKAGE'
    value: packageUrl
  }
  {
    name: 'WEBSITE_RUN_FROM_PACKAGE_BLOB_MI_RESOURCE_ID'
    value: identity.id
  }
]

// Only when tenantsAppClientId is given: with a tenant registry, the multi-tenant app caguard signs in
// as in each registry tenant. Kept out of commonAppSettings so a single-tenant deployment sets nothing
// new (handler/config/settings_infra_test.go checks both lists and the condition).
var fleetAppSettings = [
  {
    name: 'TENANTS_APP_CLIENT_ID'
    value: tenantsAppClientId
  }
]

var commonSiteConfig = {
  // A custom handler needs no language image: linuxFxVersion stays empty, as the Functions stacks
  // definition for "custom" specifies.
  ftpsState: 'Disabled'
  minTlsVersion: '1.2'
  scmMinTlsVersion: '1.2'
  http20Enabled: true
}

// ep1 only (Flex deprecates these site properties; its scale settings are in functionAppConfig).
var ep1SiteConfig = {
  // Scale decisions come from the Functions runtime, which reads Event Hubs with the app's own
  // identity; this also keeps scaling working if the namespace is later put behind a network.
  functionsRuntimeScaleMonitoringEnabled: true
  minimumElasticInstanceCount: 1
  functionAppScaleLimit: maximumElasticWorkerCount
}

resource functionApp 'Microsoft.Web/sites@2024-04-01' = {
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
    reserved: isFlex ? null : true
    httpsOnly: true
    clientAffinityEnabled: false
    publicNetworkAccess: 'Enabled' // Evaluate is an HTTP function (function key required)
    keyVaultReferenceIdentity: identity.id
    siteConfig: union(commonSiteConfig, isFlex ? {} : ep1SiteConfig, {
      appSettings: concat(commonAppSettings, isFlex ? [] : ep1OnlyAppSettings, empty(tenantsAppClientId) ? [] : fleetAppSettings)
    })
    functionAppConfig: isFlex
      ? {
          deployment: {
            storage: {
              type: 'blobContainer'
              value: packageContainerUrl
              authentication: {
                type: 'UserAssignedIdentity'
                userAssignedIdentityResourceId: identity.id
              }
            }
          }
          scaleAndConcurrency: {
            // No alwaysReady entry: every function group scales to zero when idle.
            maximumInstanceCount: flexMaximumInstanceCount
            instanceMemoryMB: flexInstanceMemoryMB
          }
          runtime: {
            name: 'custom'
            version: '1.0'
          }
        }
      : null
  }
  dependsOn: [
    // The deployment storage container exists before the site points at it (functionAppConfig names
    // it by URL only, which makes no dependency by itself).
    packageContainer
    // The host starts with its storage, Event Hubs and telemetry access already in place.
    hostBlobOwner
    hostTableContributor
    auditConsumerGroup // Standard only; the trigger's group exists before the host starts
    auditReceiver
    appInsightsPublisher
    alertSender
    // The fan-out's queues and the identity's rights on them (TENANT_SWEEP_QUEUE names the first).
    tenantSweepPoisonQueue
    queueReader
    queueProcessor
    queueSender
  ]
}

// No FTP and no basic-auth publishing on either plan: flex publishes through its deployment endpoint
// with an Entra token, ep1 through the package blob.
resource ftpBasicAuth 'Microsoft.Web/sites/basicPublishingCredentialsPolicies@2024-04-01' = {
  parent: functionApp
  name: 'ftp'
  properties: {
    allow: false
  }
}

resource scmBasicAuth 'Microsoft.Web/sites/basicPublishingCredentialsPolicies@2024-04-01' = {
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

@description('Hosting plan of the Function App (flex or ep1): how scripts/deploy.sh publishes.')
output hostingPlan string = hostingPlan

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

@description('Blob container of the app package (flex: the deployment storage; ep1: holds the package blob).')
output packageContainerName string = packageContainer.name

@description('ep1: blob name of the app package (the app runs from this blob). flex: the platform names its own blob.')
output packageBlobName string = packageBlobName

@description('Microsoft Graph application permissions to grant the identity (scripts/grant-graph-permissions.sh), from infra/graph-permissions.json: required always; remediate for REMEDIATION_MODE=remediate (--remediate); reviews unless EXCLUSION_REVIEW is off; optional to enrich exclusion reports (--details); licences when CONTROLS enables a control that needs a licence, user-risk-policy or sign-in-risk-policy (--licences); grant, everything this deployment needs.')
output graphPermissions object = {
  required: graphPermissionSets.alert.permissions
  remediate: remediationMode == 'remediate' ? graphPermissionSets.remediate.permissions : []
  reviews: exclusionReview != 'off' ? graphPermissionSets.reviews.permissions : []
  optional: union(graphPermissionSets.users.permissions, graphPermissionSets.signIns.permissions)
  licences: controlsNeedLicences ? graphPermissionSets.licences.permissions : []
  grant: union(
    graphPermissionSets.alert.permissions,
    remediationMode == 'remediate' ? graphPermissionSets.remediate.permissions : [],
    exclusionReview != 'off' ? graphPermissionSets.reviews.permissions : [],
    controlsNeedLicences ? graphPermissionSets.licences.permissions : []
  )
}
