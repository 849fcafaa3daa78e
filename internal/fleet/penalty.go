package fleet

import "time"

// A host whose session was cut for going past the tunnel's limits is refused new sessions
// for a while, so that a flooder reconnecting at once gains nothing: penaltyBase after the
// first cut, doubling with each cut after it up to penaltyMax. A host with no cut for
// penaltyForget starts again from nothing.
const (
	penaltyBase   = 10 * time.Second
	penaltyMax    = 10 * time.Minute
	penaltyForget = time.Hour
)

// penalty is one host's record of cuts. Guarded by Fleet.mu.
type penalty struct {
	strikes int
	until   time.Time // new sessions are refused until then
	last    time.Time // the last cut
}

// penalise records a cut of the host's session at now and returns how long the host is
// refused.
func (f *Fleet) penalise(hostID string, now time.Time) time.Duration {
	f.mu.Lock()
	defer f.mu.Unlock()
	p := f.penalties[hostID]
	if p == nil || now.Sub(p.last) > penaltyForget {
		p = &penalty{}
		f.penalties[hostID] = p
	}
	p.strikes++
	d := penaltyMax
	if p.strikes <= 10 { // 10 s × 2^9 is past penaltyMax already
		d = min(penaltyBase<<(p.strikes-1), penaltyMax)
	}
	p.until, p.last = now.Add(d), now
	return d
}

// penalised reports how much longer the host is refused, if it is.
func (f *Fleet) penalised(hostID string, now time.Time) (time.Duration, bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	p := f.penalties[hostID]
	if p == nil || !now.Before(p.until) {
		return 0, false
	}
	return p.until.Sub(now), true
}

// forgetPenalties drops the records of hosts with no cut for penaltyForget. Call with f.mu
// held.
func (f *Fleet) forgetPenalties(now time.Time) {
	for id, p := range f.penalties {
		if now.Sub(p.last) > penaltyForget {
			delete(f.penalties, id)
		}
	}
}
