package agent

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/user"
	"strconv"
	"strings"
	"sync"

	"github.com/pocketmolt/pocketmolt/internal/nofollow"
)

// Each bot runs as a uid:gid of its own (the same number for both), base + slot, so that no
// bot can read another's files or its /proc/<pid>/environ (secrets included), and no person
// with a login on the host can either.
//
// DefaultBotUIDBase is far from every range a Linux host hands out: system users (< 1000),
// logins (1000–60000, login.defs), systemd-homed (60001–60513) and dynamic users
// (61184–65519), nobody (65534), /etc/subuid ranges (useradd gives 65536 each from 100000 up
// to 600100000), systemd-nspawn's private user ranges (524288–1879048191) and systemd's
// "foreign" range (2147352576–2147418111); uids from 2^31 up are avoided because some tools
// read them as negative. An agent takes BotUIDRange uids from its base: two agents on one
// machine need bases at least BotUIDRange apart.
const (
	DefaultBotUIDBase = 1_900_000_000
	BotUIDRange       = 65536
	// maxBotUID keeps every uid below systemd's foreign range and 2^31.
	maxBotUID = 2_147_352_575
)

// uidFile holds a bot's uid in its agent-owned directory: the allocation survives restarts,
// and the container cannot change it.
const uidFile = "uid"

// ValidBotUIDBase checks a configured base: above every range a host gives its own users and
// with room for BotUIDRange bots below maxBotUID.
func ValidBotUIDBase(base int) error {
	if base < 65536 || base > maxBotUID-BotUIDRange+1 {
		return fmt.Errorf("bot uid base %d: use %d to %d, a range no account of the host uses", base, 65536, maxBotUID-BotUIDRange+1)
	}
	return nil
}

// errCannotChown is returned when the agent cannot give a bot's directories to the bot's uid.
var errCannotChown = errors.New("cannot give the bot's directories to its own uid: run pmagent as root, " +
	"or with the capabilities of examples/pmagent.service (AmbientCapabilities=CAP_CHOWN CAP_FOWNER CAP_DAC_OVERRIDE); " +
	"on a laptop, bot-shared-uid lets every bot run as the agent's own user, without isolation between bots")

// owner is who a bot's processes and writable directories belong to.
type owner struct{ uid, gid int }

func (o owner) user() string { return strconv.Itoa(o.uid) + ":" + strconv.Itoa(o.gid) }

// uids hands out and remembers the bots' uids. It is safe for concurrent use.
type uids struct {
	base   int
	shared bool // every bot runs as the agent's own uid:gid
	// taken reports whether a host account or group has the id (os/user by default).
	taken func(id int) bool

	mu     sync.Mutex
	loaded bool
	byBot  map[string]int
	used   map[int]string
	clash  map[int]bool // recorded uids that a host account took since
}

func newUIDs() *uids {
	return &uids{base: DefaultBotUIDBase, taken: hostHasID}
}

// hostHasID reports whether the host knows id as a user or a group. Built without cgo, os/user
// reads /etc/passwd and /etc/group only, not NSS (LDAP, sssd).
func hostHasID(id int) bool {
	s := strconv.Itoa(id)
	if _, err := user.LookupId(s); err == nil {
		return true
	}
	_, err := user.LookupGroupId(s)
	return err == nil
}

// owner returns bot id's uid:gid, allocating and recording one on first use. root is the
// agent's bots directory and bot the bot's own directory in it.
func (u *uids) owner(root, bot *nofollow.Dir, id string) (owner, error) {
	if u.shared {
		return owner{os.Getuid(), os.Getgid()}, nil
	}
	u.mu.Lock()
	defer u.mu.Unlock()
	if err := u.load(root); err != nil {
		return owner{}, err
	}
	if uid, ok := u.byBot[id]; ok {
		if u.clash[uid] {
			return owner{}, fmt.Errorf("bot uid %d is also an account or group of this host now: remove that account, or purge the bot and create it again", uid)
		}
		return owner{uid, uid}, nil
	}
	for uid := u.base; uid < u.base+BotUIDRange; uid++ {
		if _, used := u.used[uid]; used || u.taken(uid) {
			continue
		}
		// Written before use: a crash after it wastes nothing but a slot, a crash before
		// it leaves nothing owned by the uid.
		if err := bot.WriteFile(uidFile, []byte(strconv.Itoa(uid)+"\n"), 0o600, -1, -1); err != nil {
			return owner{}, fmt.Errorf("record bot uid: %w", err)
		}
		u.byBot[id], u.used[uid] = uid, id
		return owner{uid, uid}, nil
	}
	return owner{}, fmt.Errorf("no free bot uid in %d–%d: every one is a bot's or a host account's", u.base, u.base+BotUIDRange-1)
}

// load reads every bot's recorded uid once.
func (u *uids) load(root *nofollow.Dir) error {
	if u.loaded {
		return nil
	}
	names, err := root.Names()
	if err != nil {
		return fmt.Errorf("read bot uids: %w", err)
	}
	u.byBot, u.used, u.clash = map[string]int{}, map[int]string{}, map[int]bool{}
	for _, name := range names {
		if !validID(name) {
			continue
		}
		bot, err := root.OpenDir(name)
		if err != nil {
			continue // not a bot's directory
		}
		b, err := bot.ReadFile(uidFile, 32)
		bot.Close()
		if errors.Is(err, fs.ErrNotExist) {
			continue
		}
		if err != nil {
			return fmt.Errorf("read bot uid of %s: %w", name, err)
		}
		uid, err := strconv.Atoi(strings.TrimSpace(string(b)))
		if err != nil || uid <= 0 || uid > maxBotUID {
			return fmt.Errorf("read bot uid of %s: %q is not a uid", name, b)
		}
		u.byBot[name], u.used[uid] = uid, name
		if u.taken(uid) {
			u.clash[uid] = true
		}
	}
	u.loaded = true
	return nil
}

// forget drops a purged bot's uid, free for another bot.
func (u *uids) forget(id string) {
	u.mu.Lock()
	defer u.mu.Unlock()
	if uid, ok := u.byBot[id]; ok {
		delete(u.byBot, id)
		delete(u.used, uid)
	}
}
