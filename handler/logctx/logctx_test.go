package logctx

import (
	"context"
	"testing"

	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"
)

func TestFrom(t *testing.T) {
	core, logs := observer.New(zap.InfoLevel)
	inv := zap.New(core).With(zap.String("invocationId", "abc"))
	fallbackCore, fallbackLogs := observer.New(zap.InfoLevel)
	fallback := zap.New(fallbackCore)

	From(With(context.Background(), inv), fallback).Info("scoped")
	From(context.Background(), fallback).Info("unscoped")
	From(context.Background(), nil).Info("dropped")

	if logs.Len() != 1 || logs.All()[0].ContextMap()["invocationId"] != "abc" {
		t.Errorf("scoped line: %v", logs.All())
	}
	if fallbackLogs.Len() != 1 || fallbackLogs.All()[0].Message != "unscoped" {
		t.Errorf("fallback line: %v", fallbackLogs.All())
	}
}
