package graph

import (
	"encoding/json"
	"net/http"

	"github.com/caguard/caguard/handler/capolicy"
)

// PermReadLicences is the least-privileged application permission of "List subscribedSkus" (Graph
// v1.0; Organization.Read.All and Directory.Read.All are the higher-privileged alternatives). It is
// optional: caguard reads the subscriptions only when an enabled control needs a licence.
const PermReadLicences = "LicenseAssignment.Read.All"

// subscribedSkusRead is the batched read of GET /subscribedSkus into skus. Graph documents no paging
// for it and supports only $select, so it selects what a licence check reads; a nextLink, should
// Graph send one, is followed like any other.
func subscribedSkusRead(skus *[]capolicy.SubscribedSku) *batchRead {
	const op = "list subscribed skus"
	r := &batchRead{op: op, perm: PermReadLicences, method: http.MethodGet,
		url: "/subscribedSkus?$select=skuId,skuPartNumber,capabilityStatus,servicePlans"}
	*skus = []capolicy.SubscribedSku{}
	r.page = collection(op, func(raw json.RawMessage) error {
		var s capolicy.SubscribedSku
		if err := json.Unmarshal(raw, &s); err != nil {
			return &Error{Op: op, Code: "MalformedResponse", Message: "a subscribed sku is not an object of the documented shape"}
		}
		*skus = append(*skus, s)
		return nil
	})
	return r
}
