//go:build tools

// Package tools pins KICS, the infrastructure-as-code scanner that make lint-infra runs over
// infra/*.bicep. It is a module of its own so that its hundreds of dependencies stay out of the
// handler's go.mod and build.
package tools

import _ "github.com/Checkmarx/kics/v2/cmd/console"
