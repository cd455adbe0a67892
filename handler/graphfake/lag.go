package graphfake

// Replication lag. Entra is eventually consistent: Microsoft's guidance for Entra ("Designing for
// eventual consistency" in the Graph best practices) warns that an object just created or changed can
// read as "Not Found", or as it was, for a while after the write succeeded, and
// terraform-provider-azuread waits out both after writing a Conditional Access policy. The emulator
// plays that when asked to: after a PATCH the policy reads as it was before for the next few requests,
// and after a create it answers 404 (and is missing from the list) for the next few.

// lagState is the lag the server plays, and what each policy still owes to it.
type lagState struct {
	stale, notFound int
	// old holds the pre-write version of a patched policy and how many reads still see it.
	old map[string]*laggedPolicy
	// hidden counts the reads that still answer 404 for a created policy.
	hidden map[string]int
}

type laggedPolicy struct {
	obj  object
	left int
}

// Lag makes reads trail writes: after each PATCH of a policy, the next stale reads of it (a GET by
// id, or a list that holds it) see it as it was before the write; after each create, the next
// notFound reads answer 404 for it and lists leave it out. Zero for both turns the lag off; writes
// before the call are not affected.
func (s *Server) Lag(stale, notFound int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.lag.stale, s.lag.notFound = max(stale, 0), max(notFound, 0)
	if s.lag.old == nil {
		s.lag.old, s.lag.hidden = map[string]*laggedPolicy{}, map[string]int{}
	}
}

// lagPatched records the version a patch replaced, when the lag is on. s.mu is held.
func (s *Server) lagPatched(id string, before object) {
	if s.lag.stale == 0 {
		return
	}
	if l, ok := s.lag.old[id]; ok && l.left > 0 {
		// A second write inside the window: readers still see the oldest version they saw.
		l.left = s.lag.stale
		return
	}
	s.lag.old[id] = &laggedPolicy{obj: before, left: s.lag.stale}
}

// lagCreated hides a created policy, when the lag is on. s.mu is held.
func (s *Server) lagCreated(id string) {
	if s.lag.notFound > 0 {
		s.lag.hidden[id] = s.lag.notFound
	}
}

// lagRead answers what one read of policy id sees: the stored version, an older one, or nothing
// (ok false) while a create has not replicated. Each lagged answer uses up one read. s.mu is held.
func (s *Server) lagRead(id string, stored object) (object, bool) {
	if n := s.lag.hidden[id]; n > 0 {
		if n == 1 {
			delete(s.lag.hidden, id)
		} else {
			s.lag.hidden[id] = n - 1
		}
		return nil, false
	}
	if l := s.lag.old[id]; l != nil && l.left > 0 {
		l.left--
		if l.left == 0 {
			delete(s.lag.old, id)
		}
		return l.obj, true
	}
	return stored, true
}
