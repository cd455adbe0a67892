package capolicy

import (
	"strconv"
	"strings"
)

// Values the rules read but caguard does not know fail closed, one policy at a time: such a policy
// never meets the control, its reason names each value as Graph sent it, and every other policy is
// still judged. Microsoft adds enum members over time (Graph's own evolvable enums end in
// unknownFutureValue, which stands for a member this client was not built with), so a value caguard
// has not seen may narrow a policy or offer an alternative to MFA. Empty values say nothing and pass.

// The vocabularies of values read only here.
var (
	// vocabOperators are the grant operators. An empty operator is read as the weaker OR.
	vocabOperators = vocab{names: []string{"AND", "OR"}, closed: true}
	// vocabMembershipKinds are the kinds of an externalTenants selection.
	vocabMembershipKinds = vocab{names: []string{"all", "enumerated", "unknownFutureValue"}, closed: true}
	// vocabRequirements is authenticationStrengthRequirements, a flags enum Graph sends as "mfa"
	// (members comma-separated).
	vocabRequirements = vocab{names: []string{"none", "mfa", "unknownFutureValue"}, closed: true}
	// vocabMethodModes is authenticationMethodModes; an allowed combination is a comma-separated set
	// of them ("password,microsoftAuthenticatorPush"). Graph v1.0 metadata, and msgraph-sdk-go's
	// AuthenticationMethodModes, list these; qrCodePin, added after unknownFutureValue, reaches a
	// client that does not opt in to new members as unknownFutureValue.
	vocabMethodModes = vocab{names: []string{"password", "voice", "hardwareOath", "softwareOath", "sms", "fido2",
		"windowsHelloForBusiness", "microsoftAuthenticatorPush", "deviceBasedPush", "temporaryAccessPassOneTime",
		"temporaryAccessPassMultiUse", "email", "x509CertificateSingleFactor", "x509CertificateMultiFactor",
		"federatedSingleFactor", "federatedMultiFactor", "qrCodePin", "unknownFutureValue"}, closed: true}
)

// unknownValues lists the values of p's conditions and grant controls that a rule reads and caguard
// does not recognise, in Graph's order of the properties. Authentication strengths are checked where
// they are resolved (evaluator.strength), since a grant may carry only a strength's id.
func unknownValues(p *Policy) []UnknownValue {
	var out []UnknownValue
	each := func(field string, v vocab, list []string) {
		v.eachToken(list, func(t string) bool {
			if !v.recognised(t) {
				out = append(out, UnknownValue{Field: field, Value: truncate(t, maxUnknownValue)})
			}
			return true
		})
	}
	one := func(field string, v vocab, s string) {
		if s = strings.TrimSpace(s); s != "" {
			each(field, v, []string{s})
		}
	}
	c := &p.Conditions
	if u := c.Users; u != nil {
		for _, g := range [...]struct {
			name string
			g    *GuestsOrExternalUsers
		}{{"includeGuestsOrExternalUsers", u.IncludeGuestsOrExternalUsers}, {"excludeGuestsOrExternalUsers", u.ExcludeGuestsOrExternalUsers}} {
			if g.g == nil {
				continue
			}
			each("conditions.users."+g.name+".guestOrExternalUserTypes", vocabGuestTypes, g.g.GuestOrExternalUserTypes)
			if t := g.g.ExternalTenants; t != nil {
				one("conditions.users."+g.name+".externalTenants.membershipKind", vocabMembershipKinds, t.MembershipKind)
			}
		}
	}
	each("conditions.clientAppTypes", vocabClientAppTypes, c.ClientAppTypes)
	if pl := c.Platforms; pl != nil {
		each("conditions.platforms.includePlatforms", vocabPlatforms, pl.IncludePlatforms)
		each("conditions.platforms.excludePlatforms", vocabPlatforms, pl.ExcludePlatforms)
	}
	each("conditions.userRiskLevels", vocabRiskLevels, c.UserRiskLevels)
	each("conditions.signInRiskLevels", vocabRiskLevels, c.SignInRiskLevels)
	each("conditions.servicePrincipalRiskLevels", vocabRiskLevels, c.ServicePrincipalRiskLevels)
	each("conditions.insiderRiskLevels", vocabInsiderRisk, c.InsiderRiskLevels)
	if f := c.AuthenticationFlows; f != nil {
		each("conditions.authenticationFlows.transferMethods", vocabTransferMethods, f.TransferMethods)
	}
	if g := p.GrantControls; g != nil {
		one("grantControls.operator", vocabOperators, g.Operator)
		each("grantControls.builtInControls", vocabBuiltInControls, g.BuiltInControls)
	}
	return out
}

// strengthUnknowns lists what of an authentication strength caguard does not recognise: members of
// requirementsSatisfied other than none and mfa, and methods in an allowed combination it does not
// know. An unknown method may be weaker than the ones caguard knows.
func strengthUnknowns(requirement string, combinations []string) []UnknownValue {
	const field = "grantControls.authenticationStrength."
	var out []UnknownValue
	check := func(name string, v vocab, s string) {
		for part := range strings.SplitSeq(s, ",") {
			if t := strings.TrimSpace(part); t != "" && !v.recognised(t) {
				out = append(out, UnknownValue{Field: field + name, Value: truncate(t, maxUnknownValue)})
			}
		}
	}
	check("requirementsSatisfied", vocabRequirements, requirement)
	for _, combo := range combinations {
		check("allowedCombinations", vocabMethodModes, combo)
	}
	return out
}

// unknownText renders values for a sentence: path "value", at most maxListed of them.
func unknownText(vs []UnknownValue) string {
	items := make([]string, len(vs))
	for i, v := range vs {
		items[i] = v.Field + " " + strconv.Quote(v.Value)
	}
	return joinList(items)
}

// propertyText renders unrecognised properties for a sentence: their paths only, since a value may be
// a whole object; the reason's Unrecognised field carries the values.
func propertyText(vs []UnknownValue) string {
	items := make([]string, len(vs))
	for i, v := range vs {
		items[i] = v.Field
	}
	return joinList(items)
}
