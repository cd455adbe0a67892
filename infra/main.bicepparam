// Example parameters for infra/main.bicep. Copy it, replace the placeholders, and deploy with
//   scripts/deploy.sh -g <resource group> -p infra/<your copy>.bicepparam
// It holds no secrets: the webhook URL (if any) and the deployer's object id come from the
// environment when the file is compiled.
using 'main.bicep'

param namePrefix = 'caguard'

// flex (default): Flex Consumption, billed per execution, cold start after idle spells.
// ep1: Elastic Premium, one instance always warm (no cold start), about $155-175 a month.
// See README.md, "Cost". To switch an existing deployment, delete its Function App first.
param hostingPlan = 'flex'
param flexInstanceMemoryMB = 512
// 40 is the lowest maximum every Flex region accepts; the writer lease keeps writes single at any count.
param flexMaximumInstanceCount = 40

// Approved break-glass accounts: the only exclusions a compliant policy may have. Replace these
// placeholders with the object ids of your emergency-access users and (optionally) groups.
param breakGlassUserIds = '00000000-0000-0000-0000-000000000001,00000000-0000-0000-0000-000000000002'
param breakGlassGroupIds = ''

// Start with alert; switch to remediate after granting the remediate set of
// infra/graph-permissions.json (scripts/grant-graph-permissions.sh --remediate).
param remediationMode = 'alert'
param managedPolicyName = 'caguard: require MFA for Azure management'
param sweepSchedule = '0 30 2 * * *'

// Access reviews of the exclusions: off, report (default) or require; grace in days before a missing
// review counts as overdue.
param exclusionReview = 'report'
param exclusionReviewGraceDays = 14

// Basic (default) is enough for a hub only caguard reads: $Default consumer group, 1 day retention.
// Standard when another reader needs its own consumer group; auditRetentionDays applies there.
param eventHubSku = 'Basic'
param auditPartitionCount = 2
param auditRetentionDays = 3

// Many tenants (README.md, "Many tenants"): the application id that scripts/setup-fleet-app.sh
// prints. Empty: TENANTS_APP_CLIENT_ID is not deployed.
param tenantsAppClientId = ''

// Optional alert sinks.
param deployAlertEventHub = false
param alertWebhookUrl = readEnvironmentVariable('CAGUARD_ALERT_WEBHOOK_URL', '')
param alertWebhookFormat = 'auto'

// ep1 only: who uploads the app package. scripts/deploy.sh sets both variables for the signed-in
// account.
param deployerPrincipalId = readEnvironmentVariable('CAGUARD_DEPLOYER_OBJECT_ID', '')
param deployerPrincipalType = readEnvironmentVariable('CAGUARD_DEPLOYER_PRINCIPAL_TYPE', 'User')
