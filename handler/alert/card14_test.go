package alert

import (
	"fmt"
	"slices"
	"strconv"
	"strings"
)

// validateCard14 checks a card against the rules of Adaptive Cards schema 1.4 (adaptivecards.io
// schema explorer) for the elements this package emits: the version is at most 1.4, every element and
// action type exists in 1.4, each carries only properties defined for it by 1.4 (so nothing from 1.5
// such as TextBlock.style or rtl slips in), required properties are present, and enum values are
// spelled as the schema spells them. Teams drops a card that fails these rules, or shows a fallback.
func validateCard14(c map[string]any) []string {
	var errs []string
	fail := func(path, format string, args ...any) {
		errs = append(errs, path+": "+fmt.Sprintf(format, args...))
	}
	if c["type"] != "AdaptiveCard" {
		fail("card", "type %v, want AdaptiveCard", c["type"])
	}
	v, _ := c["version"].(string)
	if maj, min, ok := strings.Cut(v, "."); !ok || maj != "1" || atoi(min) > 4 {
		fail("card", "version %q, want 1.0 to 1.4", v)
	}
	allowedKeys("card", c, []string{"type", "version", "$schema", "body", "actions", "selectAction", "fallbackText",
		"backgroundImage", "minHeight", "speak", "lang", "verticalContentAlignment", "refresh", "authentication",
		"msteams"}, fail)

	common := []string{"type", "id", "isVisible", "requires", "fallback", "height", "separator", "spacing"}
	enums := map[string][]string{
		"spacing":             {"None", "Small", "Default", "Medium", "Large", "ExtraLarge", "Padding"},
		"color":               {"Default", "Dark", "Light", "Accent", "Good", "Warning", "Attention"},
		"size":                {"Small", "Default", "Medium", "Large", "ExtraLarge"},
		"weight":              {"Lighter", "Default", "Bolder"},
		"style":               {"default", "emphasis", "good", "attention", "warning", "accent"},
		"horizontalAlignment": {"Left", "Center", "Right"},
	}
	checkEnums := func(path string, el map[string]any) {
		for k, allowed := range enums {
			if val, ok := el[k]; ok && !slices.Contains(allowed, fmt.Sprint(val)) {
				fail(path, "%s %v, want one of %v", k, val, allowed)
			}
		}
	}

	var element func(path string, el map[string]any)
	elements := func(path string, v any) {
		list, ok := v.([]any)
		if !ok {
			fail(path, "want an array of elements, got %T", v)
			return
		}
		for i, e := range list {
			m, ok := e.(map[string]any)
			if !ok {
				fail(path, "element %d is %T, want an object", i, e)
				continue
			}
			element(fmt.Sprintf("%s[%d]", path, i), m)
		}
	}
	element = func(path string, el map[string]any) {
		checkEnums(path, el)
		switch el["type"] {
		case "TextBlock":
			allowedKeys(path, el, append(common, "text", "color", "fontType", "horizontalAlignment", "isSubtle", "maxLines", "size", "weight", "wrap"), fail)
			if s, ok := el["text"].(string); !ok || s == "" {
				fail(path, "TextBlock needs a non-empty text")
			}
		case "FactSet":
			allowedKeys(path, el, append(common, "facts"), fail)
			facts, _ := el["facts"].([]any)
			if len(facts) == 0 {
				fail(path, "FactSet needs facts")
			}
			for i, f := range facts {
				fm, _ := f.(map[string]any)
				allowedKeys(fmt.Sprintf("%s.facts[%d]", path, i), fm, []string{"title", "value"}, fail)
				if _, ok := fm["title"].(string); !ok {
					fail(path, "fact %d needs a string title", i)
				}
				if _, ok := fm["value"].(string); !ok {
					fail(path, "fact %d needs a string value", i)
				}
			}
		case "Container":
			allowedKeys(path, el, append(common, "items", "selectAction", "style", "verticalContentAlignment", "bleed", "backgroundImage", "minHeight"), fail)
			elements(path+".items", el["items"])
		default:
			fail(path, "element type %v is not one this check knows from schema 1.4", el["type"])
		}
	}
	elements("card.body", c["body"])

	if acts, ok := c["actions"].([]any); ok {
		for i, a := range acts {
			m, _ := a.(map[string]any)
			path := fmt.Sprintf("card.actions[%d]", i)
			if m["type"] != "Action.OpenUrl" {
				fail(path, "action type %v, want Action.OpenUrl", m["type"])
			}
			allowedKeys(path, m, []string{"type", "id", "title", "iconUrl", "style", "fallback", "requires", "url"}, fail)
			if u, _ := m["url"].(string); !strings.HasPrefix(u, "https://") {
				fail(path, "Action.OpenUrl needs an https url, got %q", u)
			}
		}
	}
	return errs
}

func allowedKeys(path string, m map[string]any, allowed []string, fail func(string, string, ...any)) {
	for k := range m {
		if !slices.Contains(allowed, k) {
			fail(path, "property %q is not defined for this element in schema 1.4", k)
		}
	}
}

func atoi(s string) int {
	n, err := strconv.Atoi(s)
	if err != nil {
		return 99
	}
	return n
}
