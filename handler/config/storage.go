package config

import (
	"encoding/base64"
	"fmt"
	"net/url"
	"regexp"
	"strings"
)

// Names of the Functions host's storage settings, which caguard reads too: its single-writer lease and
// its record of the managed policy live in the app's own storage account.
const (
	SettingStorage           = "AzureWebJobsStorage"
	SettingStorageServiceURI = "AzureWebJobsStorage__blobServiceUri"
	SettingStorageAccount    = "AzureWebJobsStorage__accountName"
	SettingStorageCredential = "AzureWebJobsStorage__credential"
	SettingStorageClientID   = "AzureWebJobsStorage__clientId"
)

// Azurite's well-known development account, which "UseDevelopmentStorage=true" stands for. The key is
// public (it is printed in Azurite's documentation) and only ever opens a local emulator.
const (
	devStorageAccount  = "devstoreaccount1"
	devStorageKey      = "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="
	devStorageEndpoint = "http://127.0.0.1:10000/devstoreaccount1"
)

// Storage is where caguard keeps its writer lease and ownership record: the blob service of the
// storage account in AzureWebJobsStorage. The zero value means none is configured. AccountKey and SAS
// are secrets: log Redacted, never the struct.
type Storage struct {
	// Setting names the setting it came from, for messages.
	Setting string
	// BlobServiceURL is the blob endpoint, e.g. https://NAME.blob.core.windows.net/.
	BlobServiceURL string
	// AccountName and AccountKey authenticate with the account's shared key (a connection string).
	AccountName string
	AccountKey  string
	// SAS is a shared access signature (a connection string's SharedAccessSignature), without "?".
	SAS string
	// ClientID is the user-assigned managed identity for an identity-based connection; empty means the
	// credential caguard uses for Graph.
	ClientID string
}

// Configured reports whether a storage account is set.
func (s Storage) Configured() bool { return s.BlobServiceURL != "" }

// Auth names how caguard authenticates to the account: "shared-key", "sas", "identity" or "" (none).
func (s Storage) Auth() string {
	switch {
	case !s.Configured():
		return ""
	case s.AccountKey != "":
		return "shared-key"
	case s.SAS != "":
		return "sas"
	}
	return "identity"
}

// Redacted describes the storage without secrets.
func (s Storage) Redacted() map[string]any {
	if !s.Configured() {
		return map[string]any{"configured": false}
	}
	return map[string]any{"setting": s.Setting, "blobServiceUrl": s.BlobServiceURL, "auth": s.Auth(), "clientId": s.ClientID}
}

var storageAccountRE = regexp.MustCompile(`^[a-z0-9]{3,24}$`)

// storage reads AzureWebJobsStorage, as a connection string or in its identity-based form, the way the
// Functions host documents it. Both forms at once is an error: the host and caguard could then pick
// different accounts.
func (l *loader) storage() Storage {
	conn := l.str(SettingStorage, "")
	serviceURI := l.str(SettingStorageServiceURI, "")
	account := l.str(SettingStorageAccount, "")
	credential := l.str(SettingStorageCredential, "")
	clientID := l.guid(SettingStorageClientID, false)

	identity := serviceURI != "" || account != ""
	switch {
	case conn != "" && identity:
		l.fail(SettingStorage, fmt.Sprintf("is set as a connection string and as an identity-based connection (%s or %s); set one", SettingStorageServiceURI, SettingStorageAccount))
		return Storage{}
	case conn != "":
		if credential != "" || clientID != "" {
			l.fail(SettingStorageCredential, fmt.Sprintf("and %s apply to an identity-based connection only, not to a connection string in %s", SettingStorageClientID, SettingStorage))
		}
		return l.storageConnectionString(conn)
	case !identity:
		if credential != "" || clientID != "" {
			l.fail(SettingStorageCredential, fmt.Sprintf("or %s is set, but neither %s nor %s names the account", SettingStorageClientID, SettingStorageServiceURI, SettingStorageAccount))
		}
		return Storage{}
	}

	if credential != "" && !strings.EqualFold(credential, "managedidentity") {
		l.fail(SettingStorageCredential, fmt.Sprintf("must be managedidentity or unset, got %q", credential))
	}
	s := Storage{ClientID: clientID}
	if serviceURI != "" {
		// The host prefers the service URI when both are set; so does caguard.
		s.Setting = SettingStorageServiceURI
		s.BlobServiceURL = l.blobEndpoint(SettingStorageServiceURI, serviceURI)
	} else {
		s.Setting = SettingStorageAccount
		if !storageAccountRE.MatchString(account) {
			l.fail(SettingStorageAccount, fmt.Sprintf("must be a storage account name (3 to 24 lowercase letters and digits), got %q", account))
			return Storage{}
		}
		s.BlobServiceURL = "https://" + account + ".blob.core.windows.net/"
	}
	if s.BlobServiceURL == "" {
		return Storage{}
	}
	return s
}

// storageConnectionString parses a storage connection string. Its values are never echoed in an
// error: it holds the account key.
func (l *loader) storageConnectionString(conn string) Storage {
	kv := map[string]string{}
	for _, part := range strings.Split(conn, ";") {
		part = strings.TrimSpace(part)
		if part == "" {
			continue
		}
		k, v, ok := strings.Cut(part, "=")
		if !ok || strings.TrimSpace(k) == "" {
			l.fail(SettingStorage, "must be a storage connection string of key=value pairs separated by semicolons")
			return Storage{}
		}
		// Keys are case-insensitive; a value may contain "=" (base64 padding, SAS query).
		kv[strings.ToLower(strings.TrimSpace(k))] = strings.TrimSpace(v)
	}
	s := Storage{Setting: SettingStorage}
	if strings.EqualFold(kv["usedevelopmentstorage"], "true") {
		s.AccountName, s.AccountKey, s.BlobServiceURL = devStorageAccount, devStorageKey, devStorageEndpoint+"/"
		return s
	}
	s.AccountName, s.AccountKey, s.SAS = kv["accountname"], kv["accountkey"], strings.TrimPrefix(kv["sharedaccesssignature"], "?")
	switch {
	case s.AccountName != "" && s.AccountKey != "":
		if _, err := base64.StdEncoding.DecodeString(s.AccountKey); err != nil {
			l.fail(SettingStorage, "has an AccountKey that is not base64")
			return Storage{}
		}
		s.SAS = ""
	case s.SAS != "":
		s.AccountKey = ""
	default:
		l.fail(SettingStorage, "needs AccountName and AccountKey, or SharedAccessSignature (or UseDevelopmentStorage=true)")
		return Storage{}
	}
	if ep := kv["blobendpoint"]; ep != "" {
		s.BlobServiceURL = l.blobEndpoint(SettingStorage, ep)
	} else if s.AccountName != "" {
		proto := strings.ToLower(kv["defaultendpointsprotocol"])
		if proto == "" {
			proto = "https"
		}
		if proto != "https" {
			l.fail(SettingStorage, fmt.Sprintf("must use DefaultEndpointsProtocol=https for a remote account, got %q", proto))
			return Storage{}
		}
		suffix := kv["endpointsuffix"]
		if suffix == "" {
			suffix = "core.windows.net"
		}
		s.BlobServiceURL = l.blobEndpoint(SettingStorage, "https://"+s.AccountName+".blob."+suffix)
	} else {
		l.fail(SettingStorage, "with a SharedAccessSignature needs a BlobEndpoint")
		return Storage{}
	}
	if s.BlobServiceURL == "" {
		return Storage{}
	}
	return s
}

// blobEndpoint validates a blob service URL: absolute, https (plain http only to a loopback host, i.e.
// a local emulator), no credentials or query (a SAS belongs in SharedAccessSignature, where it is
// kept out of logs). It returns the URL with one trailing slash, or "" after recording the problem.
func (l *loader) blobEndpoint(name, v string) string {
	u, err := url.Parse(v)
	if err != nil || u.Host == "" || (u.Scheme != "https" && u.Scheme != "http") {
		l.fail(name, "must give an absolute http(s) blob endpoint")
		return ""
	}
	if u.User != nil || u.RawQuery != "" || u.Fragment != "" {
		l.fail(name, "must give a blob endpoint without credentials, query or fragment")
		return ""
	}
	if u.Scheme == "http" && !isLoopback(u.Hostname()) {
		l.fail(name, fmt.Sprintf("must use https for the blob endpoint (plain http is allowed only to a loopback host), got host %q", u.Hostname()))
		return ""
	}
	return strings.TrimRight(u.String(), "/") + "/"
}
