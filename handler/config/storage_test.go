package config

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// A key that decodes as base64 but opens nothing; tests look for it in messages that must not hold it.
const testAccountKey = "c2VjcmV0LWtleS10aGF0LW11c3QtbmV2ZXItYmUtbG9nZ2Vk"

func TestStorageSettings(t *testing.T) {
	tests := []struct {
		name string
		set  map[string]string
		want Storage
	}{
		{
			name: "no storage setting leaves storage unconfigured",
			want: Storage{},
		},
		{
			name: "UseDevelopmentStorage stands for the local emulator's well-known account",
			set:  map[string]string{"AzureWebJobsStorage": "UseDevelopmentStorage=true"},
			want: Storage{Setting: "AzureWebJobsStorage", BlobServiceURL: "http://127.0.0.1:10000/devstoreaccount1/", AccountName: "devstoreaccount1", AccountKey: devStorageKey},
		},
		{
			name: "an emulator on another port is given by its blob endpoint",
			set: map[string]string{"AzureWebJobsStorage": "DefaultEndpointsProtocol=http;AccountName=devstoreaccount1;AccountKey=" + devStorageKey +
				";BlobEndpoint=http://127.0.0.1:41234/devstoreaccount1;"},
			want: Storage{Setting: "AzureWebJobsStorage", BlobServiceURL: "http://127.0.0.1:41234/devstoreaccount1/", AccountName: "devstoreaccount1", AccountKey: devStorageKey},
		},
		{
			name: "an account connection string derives the endpoint from name and suffix",
			set:  map[string]string{"AzureWebJobsStorage": "defaultendpointsprotocol=https; AccountName=caguardfn ;AccountKey=" + testAccountKey + ";EndpointSuffix=core.usgovcloudapi.net"},
			want: Storage{Setting: "AzureWebJobsStorage", BlobServiceURL: "https://caguardfn.blob.core.usgovcloudapi.net/", AccountName: "caguardfn", AccountKey: testAccountKey},
		},
		{
			name: "a SAS connection string keeps the signature apart from the endpoint",
			set:  map[string]string{"AzureWebJobsStorage": "BlobEndpoint=https://caguardfn.blob.core.windows.net;SharedAccessSignature=?sv=2022-11-02&sig=abc%3D"},
			want: Storage{Setting: "AzureWebJobsStorage", BlobServiceURL: "https://caguardfn.blob.core.windows.net/", SAS: "sv=2022-11-02&sig=abc%3D"},
		},
		{
			name: "an account name alone means the identity-based public cloud endpoint",
			set:  map[string]string{"AzureWebJobsStorage__accountName": "caguardfn", "AzureWebJobsStorage__credential": "managedidentity", "AzureWebJobsStorage__clientId": "AAAAAAAA-0000-4000-8000-000000000009"},
			want: Storage{Setting: "AzureWebJobsStorage__accountName", BlobServiceURL: "https://caguardfn.blob.core.windows.net/", ClientID: "aaaaaaaa-0000-4000-8000-000000000009"},
		},
		{
			name: "a blob service URI wins over an account name as it does for the host",
			set:  map[string]string{"AzureWebJobsStorage__blobServiceUri": "https://caguardfn.blob.core.chinacloudapi.cn", "AzureWebJobsStorage__accountName": "other"},
			want: Storage{Setting: "AzureWebJobsStorage__blobServiceUri", BlobServiceURL: "https://caguardfn.blob.core.chinacloudapi.cn/"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			kv := base()
			for k, v := range tt.set {
				kv[k] = v
			}
			c, err := Load(env(kv))
			if err != nil {
				t.Fatal(err)
			}
			if c.Storage != tt.want {
				t.Errorf("got %+v, want %+v", c.Storage, tt.want)
			}
		})
	}
}

func TestStorageSettingErrors(t *testing.T) {
	tests := []struct {
		name    string
		set     map[string]string
		setting string
	}{
		{"both a connection string and an identity-based connection", map[string]string{"AzureWebJobsStorage": "UseDevelopmentStorage=true", "AzureWebJobsStorage__accountName": "caguardfn"}, "AzureWebJobsStorage"},
		{"a connection string without pairs", map[string]string{"AzureWebJobsStorage": "AccountKey" + testAccountKey}, "AzureWebJobsStorage"},
		{"a connection string without a key or signature", map[string]string{"AzureWebJobsStorage": "AccountName=caguardfn"}, "AzureWebJobsStorage"},
		{"an account key that is not base64", map[string]string{"AzureWebJobsStorage": "AccountName=caguardfn;AccountKey=not*base64!"}, "AzureWebJobsStorage"},
		{"a remote account over plain http", map[string]string{"AzureWebJobsStorage": "DefaultEndpointsProtocol=http;AccountName=caguardfn;AccountKey=" + testAccountKey}, "AzureWebJobsStorage"},
		{"a remote blob endpoint over plain http", map[string]string{"AzureWebJobsStorage": "AccountName=caguardfn;AccountKey=" + testAccountKey + ";BlobEndpoint=http://caguardfn.blob.core.windows.net"}, "AzureWebJobsStorage"},
		{"a signature without an endpoint", map[string]string{"AzureWebJobsStorage": "SharedAccessSignature=sv=1&sig=x"}, "AzureWebJobsStorage"},
		{"identity settings beside a connection string", map[string]string{"AzureWebJobsStorage": "UseDevelopmentStorage=true", "AzureWebJobsStorage__credential": "managedidentity"}, "AzureWebJobsStorage__credential"},
		{"a client id without an account", map[string]string{"AzureWebJobsStorage__clientId": "aaaaaaaa-0000-4000-8000-000000000009"}, "AzureWebJobsStorage__clientId"},
		{"a client id that is not a GUID", map[string]string{"AzureWebJobsStorage__accountName": "caguardfn", "AzureWebJobsStorage__clientId": "caguard-identity"}, "AzureWebJobsStorage__clientId"},
		{"a credential other than managed identity", map[string]string{"AzureWebJobsStorage__accountName": "caguardfn", "AzureWebJobsStorage__credential": "connectionstring"}, "AzureWebJobsStorage__credential"},
		{"an account name with capitals", map[string]string{"AzureWebJobsStorage__accountName": "CaguardFn"}, "AzureWebJobsStorage__accountName"},
		{"a service URI that is not absolute", map[string]string{"AzureWebJobsStorage__blobServiceUri": "caguardfn.blob.core.windows.net"}, "AzureWebJobsStorage__blobServiceUri"},
		{"a service URI carrying a SAS", map[string]string{"AzureWebJobsStorage__blobServiceUri": "https://caguardfn.blob.core.windows.net/?sig=x"}, "AzureWebJobsStorage__blobServiceUri"},
		{"a service URI over plain http to a remote host", map[string]string{"AzureWebJobsStorage__blobServiceUri": "http://caguardfn.blob.core.windows.net"}, "AzureWebJobsStorage__blobServiceUri"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			kv := base()
			for k, v := range tt.set {
				kv[k] = v
			}
			_, err := Load(env(kv))
			if err == nil {
				t.Fatalf("Load succeeded; want an error naming %s", tt.setting)
			}
			if !strings.Contains(err.Error(), tt.setting) {
				t.Errorf("error %q does not name %s", err, tt.setting)
			}
			if strings.Contains(err.Error(), testAccountKey) {
				t.Errorf("error %q shows the account key", err)
			}
		})
	}
}

func TestStorageSecretsAreNeverLogged(t *testing.T) {
	for _, conn := range []string{
		"AccountName=caguardfn;AccountKey=" + testAccountKey,
		"BlobEndpoint=https://caguardfn.blob.core.windows.net;SharedAccessSignature=sv=2022-11-02&sig=" + testAccountKey,
	} {
		kv := base()
		kv["AzureWebJobsStorage"] = conn
		c, err := Load(env(kv))
		if err != nil {
			t.Fatal(err)
		}
		if got := fmt.Sprint(c.Redacted()); strings.Contains(got, testAccountKey) {
			t.Errorf("Redacted shows the secret: %s", got)
		}
		if got := c.Storage.Redacted()["auth"]; got != "shared-key" && got != "sas" {
			t.Errorf("auth %v, want shared-key or sas", got)
		}
	}
}

// The sample settings for Core Tools load, and point caguard at the local emulator.
func TestLocalSettingsSampleLoads(t *testing.T) {
	raw, err := os.ReadFile(filepath.Join("..", "..", "local.settings.sample.json"))
	if err != nil {
		t.Fatal(err)
	}
	var sample struct{ Values map[string]string }
	if err := json.Unmarshal(raw, &sample); err != nil {
		t.Fatal(err)
	}
	sample.Values["FUNCTIONS_CUSTOMHANDLER_PORT"] = "7071" // set by the host
	c, err := Load(env(sample.Values))
	if err != nil {
		t.Fatalf("the sample does not load: %v", err)
	}
	if c.Storage.BlobServiceURL != devStorageEndpoint+"/" {
		t.Errorf("sample storage %q, want the local emulator", c.Storage.BlobServiceURL)
	}
}
