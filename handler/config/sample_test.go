package config

import (
	"encoding/json"
	"errors"
	"io"
	"regexp"
	"strings"
	"testing"
)

// sampleKeys reads every key of the sample's "Values" object in order, duplicates included:
// encoding/json would keep the last of two equal keys without a word, so the object is walked token
// by token.
func sampleKeys(t *testing.T, doc string) []string {
	t.Helper()
	dec := json.NewDecoder(strings.NewReader(doc))
	want := func(d json.Delim) {
		t.Helper()
		tok, err := dec.Token()
		if err != nil || tok != d {
			t.Fatalf("%s: want %q, got %v (%v)", localSamplePath, d, tok, err)
		}
	}
	want('{')
	var keys []string
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			t.Fatalf("%s: %v", localSamplePath, err)
		}
		if tok != "Values" {
			var skip json.RawMessage
			if err := dec.Decode(&skip); err != nil {
				t.Fatalf("%s: %v", localSamplePath, err)
			}
			continue
		}
		want('{')
		for dec.More() {
			k, err := dec.Token()
			if err != nil {
				t.Fatalf("%s: %v", localSamplePath, err)
			}
			key, ok := k.(string)
			if !ok {
				t.Fatalf("%s: key %v is not a string", localSamplePath, k)
			}
			var v any
			if err := dec.Decode(&v); err != nil {
				t.Fatalf("%s: value of %s: %v", localSamplePath, key, err)
			}
			if _, ok := v.(string); !ok {
				t.Errorf("%s: %s is %T, want a string (the host reads app settings as strings)", localSamplePath, key, v)
			}
			keys = append(keys, key)
		}
		want('}')
	}
	want('}')
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		t.Errorf("%s: trailing data after the object", localSamplePath)
	}
	return keys
}

func TestLocalSampleHasNoDuplicateKeys(t *testing.T) {
	keys := sampleKeys(t, readFile(t, localSamplePath))
	if len(keys) < 10 {
		t.Fatalf("%s: found %d settings: the walk is broken", localSamplePath, len(keys))
	}
	seen := map[string]int{}
	for _, k := range keys {
		seen[k]++
	}
	for k, n := range seen {
		if n > 1 {
			t.Errorf("%s sets %s %d times; the last one silently wins", localSamplePath, k, n)
		}
	}
}

func TestSampleKeysSeesDuplicates(t *testing.T) {
	keys := sampleKeys(t, `{"IsEncrypted": false, "Values": {"A_B": "1", "A_B": "2"}}`)
	if strings.Join(keys, ",") != "A_B,A_B" {
		t.Fatalf("keys %v, want both copies of A_B", keys)
	}
}

// readmeSetting is a setting name as the README writes it in backquotes: an upper-case app setting,
// or a host connection (AzureWebJobsStorage, AuditEventHub__…).
var readmeSetting = regexp.MustCompile("`((?:[A-Z][A-Z0-9]*(?:_[A-Z0-9]+)+)|(?:AzureWebJobsStorage|AuditEventHub)(?:__[A-Za-z]+)?)`")

// TestLocalSampleListsEverySettingTheREADMEConfigurationNames holds the README's promise that
// local.settings.sample.json "lists them all": every setting its Configuration section names, the
// handler's and the host's.
func TestLocalSampleListsEverySettingTheREADMEConfigurationNames(t *testing.T) {
	readme := readFile(t, "../../README.md")
	start := strings.Index(readme, "\n## Configuration\n")
	if start < 0 {
		t.Fatal("README.md has no Configuration section")
	}
	section := readme[start+1:]
	if end := strings.Index(section[1:], "\n## "); end >= 0 {
		section = section[:end+1]
	}
	named := map[string]bool{}
	for _, m := range readmeSetting.FindAllStringSubmatch(section, -1) {
		named[m[1]] = true
	}
	for _, must := range []string{"AZURE_TENANT_ID", "SWEEP_SCHEDULE", "AuditEventHub__fullyQualifiedNamespace"} {
		if !named[must] {
			t.Fatalf("README Configuration names %v, which lacks %s: the scan is broken", named, must)
		}
	}
	local := set(sampleKeys(t, readFile(t, localSamplePath))...)
	for name := range named {
		if _, skip := notInLocalSample[name]; skip {
			continue
		}
		if !local[name] {
			t.Errorf("README's Configuration names %s, but local.settings.sample.json lacks it", name)
		}
	}
}
