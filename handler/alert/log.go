package alert

import (
	"context"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"

	"github.com/caguard/caguard/handler/logctx"
	"github.com/caguard/caguard/handler/reconcile"
)

var _ reconcile.AlertSink = (*LogSink)(nil)

// LogSink writes each alert as one structured warn-level line. Warn is deliberate: the Functions host
// logs stderr lines containing "warn" as warnings, so an alert stands out without reading as a crash.
// It is the sink of last resort, so it never fails.
type LogSink struct {
	Log *zap.Logger
}

// Name implements reconcile.AlertSink.
func (s *LogSink) Name() string { return "log" }

// Send logs the alert, with the invocation's logger when ctx carries one (so the line has the
// invocation id). It returns nil even without a logger: there is nowhere else to report to.
func (s *LogSink) Send(ctx context.Context, a reconcile.Alert) error {
	if s == nil {
		return nil
	}
	log := logctx.From(ctx, s.Log)
	fields := []zap.Field{
		zap.String("alertId", a.ID),
		zap.String("tenantId", a.TenantID),
		zap.String("trigger", string(a.Trigger)),
		zap.String("verdict", string(a.Verdict)),
		zap.String("summary", a.Summary),
	}
	if a.TenantName != "" {
		fields = append(fields, zap.String("tenantName", a.TenantName))
	}
	if a.Failure != "" {
		fields = append(fields, zap.String("failure", a.Failure))
	}
	if a.Closest != nil {
		codes := make([]string, 0, len(a.Closest.Reasons))
		for _, r := range a.Closest.Reasons {
			codes = append(codes, r.Code)
		}
		fields = append(fields,
			zap.String("closestPolicyId", a.Closest.ID),
			zap.String("closestPolicyName", a.Closest.DisplayName),
			zap.Strings("reasonCodes", codes))
	}
	if len(a.Changes) > 0 {
		fields = append(fields, zap.Array("changes", logChanges(a.Changes)))
	}
	if len(a.Exclusions) > 0 {
		fields = append(fields, zap.Array("exclusions", logExclusions(a.Exclusions)))
	}
	fields = append(fields,
		zap.Array("actions", logActions(a.Actions)),
		zap.String("nextStep", a.NextStep))
	log.Warn("caguard alert", fields...)
	return nil
}

type logChanges []reconcile.Change

func (cs logChanges) MarshalLogArray(enc zapcore.ArrayEncoder) error {
	for _, c := range cs {
		err := enc.AppendObject(zapcore.ObjectMarshalerFunc(func(o zapcore.ObjectEncoder) error {
			o.AddString("actor", c.Actor)
			if c.ActorID != "" {
				o.AddString("actorId", c.ActorID)
			}
			o.AddString("activity", c.Activity)
			o.AddString("kind", c.Kind)
			if c.TargetID != "" {
				o.AddString("targetId", c.TargetID)
			}
			if c.TargetName != "" {
				o.AddString("targetName", c.TargetName)
			}
			if len(c.Fields) > 0 {
				fields := make([]string, 0, len(c.Fields))
				for _, f := range c.Fields {
					fields = append(fields, f.Field)
				}
				return o.AddArray("fields", zapcore.ArrayMarshalerFunc(func(ae zapcore.ArrayEncoder) error {
					for _, f := range fields {
						ae.AppendString(f)
					}
					return nil
				}))
			}
			return nil
		}))
		if err != nil {
			return err
		}
	}
	return nil
}

type logActions []reconcile.Action

func (as logActions) MarshalLogArray(enc zapcore.ArrayEncoder) error {
	for _, a := range as {
		err := enc.AppendObject(zapcore.ObjectMarshalerFunc(func(o zapcore.ObjectEncoder) error {
			o.AddString("kind", a.Kind)
			if a.PolicyID != "" {
				o.AddString("policyId", a.PolicyID)
			}
			if a.State != "" {
				o.AddString("state", a.State)
			}
			o.AddBool("performed", a.Performed)
			o.AddString("reason", a.Reason)
			return nil
		}))
		if err != nil {
			return err
		}
	}
	return nil
}
