package capolicy

import (
	"encoding/json"
	"fmt"
	"strings"
)

// String returns the Graph spelling of the state ("unknown" for StateUnknown).
func (s State) String() string {
	if s < 0 || int(s) >= len(stateNames) {
		return stateNames[StateUnknown]
	}
	return stateNames[s]
}

// ParseState reads a Graph state, ignoring case. Anything else, the empty string included, is an
// error and StateUnknown: an absent state must never read as enabled.
func ParseState(s string) (State, error) {
	for i, name := range stateNames {
		if i != int(StateUnknown) && strings.EqualFold(s, name) {
			return State(i), nil
		}
	}
	return StateUnknown, fmt.Errorf("unknown policy state %q", s)
}

// MarshalJSON writes the Graph spelling.
func (s State) MarshalJSON() ([]byte, error) { return json.Marshal(s.String()) }

// UnmarshalJSON accepts a Graph spelling in any case; null or an unrecognised value is StateUnknown,
// which no rule treats as enforced.
func (s *State) UnmarshalJSON(b []byte) error {
	var v string
	if err := json.Unmarshal(b, &v); err != nil {
		*s = StateUnknown
		return nil
	}
	*s, _ = ParseState(v)
	return nil
}
