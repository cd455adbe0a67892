package tenants

import (
	"bytes"
	"context"
	"fmt"
	"os"
)

// BlobName is the registry's blob in the app's storage container (caguard/tenants.json).
const BlobName = "tenants.json"

// BlobReader reads one blob of the app's container (blobstate.Store).
type BlobReader interface {
	ReadBlob(ctx context.Context, name string, max int64) (data []byte, found bool, err error)
}

// Source says where the registry is: a local file (TENANTS_FILE) wins; else the app's blob
// storage when there is any. found is false when neither holds one, and the deployment then guards
// the tenant of AZURE_TENANT_ID alone (Single).
type Source struct {
	File  string
	Blobs BlobReader
}

// Load reads and parses the registry. A file that is named but cannot be read is an error, as is a
// blob that exists and does not parse: a deployment meant for many tenants must never quietly fall
// back to one.
func Load(ctx context.Context, src Source, defaultMode string) (reg Registry, found bool, err error) {
	var data []byte
	origin := ""
	switch {
	case src.File != "":
		data, err = os.ReadFile(src.File)
		if err != nil {
			return Registry{}, false, fmt.Errorf("TENANTS_FILE: %w", err)
		}
		origin = src.File
	case src.Blobs != nil:
		var ok bool
		data, ok, err = src.Blobs.ReadBlob(ctx, BlobName, MaxBytes)
		if err != nil {
			return Registry{}, false, fmt.Errorf("tenant registry caguard/%s: %w", BlobName, err)
		}
		if !ok {
			return Registry{}, false, nil
		}
		origin = "caguard/" + BlobName
	default:
		return Registry{}, false, nil
	}
	reg, err = Parse(bytes.NewReader(data), defaultMode)
	if err != nil {
		return Registry{}, false, fmt.Errorf("%s: %w", origin, err)
	}
	return reg, true, nil
}
