package graph

import (
	"context"
	"net/url"

	abstractions "github.com/microsoft/kiota-abstractions-go"
	"github.com/microsoftgraph/msgraph-sdk-go/models/odataerrors"
)

// UserExists reports whether the directory holds a user with this object id: GET
// /users/{id}?$select=id, where a 404 means no. Any other failure is an *Error; a 403 names
// User.Read.All, and Forbidden reports it. The request is built here rather than through the SDK's
// users package, whose thousands of request builders would add minutes to a cold build.
func (c *Client) UserExists(ctx context.Context, id string) (bool, error) {
	const op = "get user"
	if id == "" {
		return false, &Error{Op: op, Code: "ClientError", Message: "empty user id"}
	}
	ctx, cl := c.begin(ctx, op, PermReadUsers)
	ri := abstractions.NewRequestInformation()
	ri.Method = abstractions.GET
	u := *c.base
	u.Path += "/users/" + url.PathEscape(id)
	u.RawPath = ""
	u.RawQuery = "$select=id"
	ri.SetUri(u)
	ri.Headers.TryAdd("Accept", "application/json")
	err := c.adapter.SendNoContent(ctx, ri, abstractions.ErrorMappings{"XXX": odataerrors.CreateODataErrorFromDiscriminatorValue})
	if err == nil {
		return true, nil
	}
	ge := classify(op, PermReadUsers, err, cl)
	if e, ok := ge.(*Error); ok && e.NotFound() {
		return false, nil
	}
	return false, ge
}
