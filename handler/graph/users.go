package graph

import (
	"context"
	"net/url"
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
	var u struct{}
	err := c.getObject(ctx, op, PermReadUsers, cl, c.link("/users/"+url.PathEscape(id), url.Values{"$select": {"id"}}), &u)
	if err == nil {
		return true, nil
	}
	if e, ok := err.(*Error); ok && e.NotFound() {
		return false, nil
	}
	return false, err
}
