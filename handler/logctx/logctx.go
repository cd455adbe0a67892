// Package logctx carries an invocation's logger through a context, so that every line written on
// behalf of an invocation, by whichever package, carries the host's invocation id. It is the one
// exception to passing loggers as fields: the invocation id is known only to the protocol layer, and
// the packages below it (reconcile, graph, alert) must not import that layer.
package logctx

import (
	"context"

	"go.uber.org/zap"
)

type key struct{}

// With returns ctx carrying log.
func With(ctx context.Context, log *zap.Logger) context.Context {
	return context.WithValue(ctx, key{}, log)
}

// From returns the logger ctx carries, or fallback when it carries none. A nil result is never
// returned: with neither, it is a no-op logger.
func From(ctx context.Context, fallback *zap.Logger) *zap.Logger {
	if l, ok := ctx.Value(key{}).(*zap.Logger); ok && l != nil {
		return l
	}
	if fallback != nil {
		return fallback
	}
	return zap.NewNop()
}
