package agent

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"

	"golang.org/x/sys/unix"

	"github.com/pocketmolt/pocketmolt/internal/nofollow"
	"github.com/pocketmolt/pocketmolt/internal/wire"
)

// A bot's directories on its host, under <state-dir>/bots/<id>/ (runtime.Layout 2 and later;
// layout 3 changed only the container, which gained the model endpoint's host entry):
//
//	<id>/                      the agent's, 0700; no container sees it
//	<id>/uid                   the agent's, 0600: the bot's uid (botuids.go)
//	<id>/config/               the agent's uid, the bot's gid, 0750: mounted read-only
//	<id>/config/openclaw.json  the same owners, 0640
//	<id>/state/                the bot's uid, 0700: the gateway's state dir, read-write
//	<id>/workspace/            the bot's uid, 0700: its workspace, read-write
//
// Everything a container can write (state, workspace) is hostile input: the agent never
// writes inside it while a container of the bot exists, and reaches everything through
// directories it holds open, never following a link (package nofollow). Layout 1, from agents
// before it, had one writable <id>/config holding both openclaw.json and the gateway's state;
// migrate turns it into state/.
const (
	configDir    = "config"
	stateDir     = "state"
	workspaceDir = "workspace"
	configFile   = "openclaw.json"
	// maxConfigBytes bounds the config the agent reads back to compare.
	maxConfigBytes = 1 << 20
)

// botPaths are a bot's directories as the container engine mounts them.
type botPaths struct{ config, state, workspace string }

func (m *Bots) paths(id string) botPaths {
	dir := filepath.Join(m.dir, id)
	return botPaths{config: filepath.Join(dir, configDir), state: filepath.Join(dir, stateDir), workspace: filepath.Join(dir, workspaceDir)}
}

// openBot opens <state-dir>/bots and the bot's directory in it, making both if needed; the
// caller closes both.
func (m *Bots) openBot(id string) (root, bot *nofollow.Dir, err error) {
	if !validID(id) {
		return nil, nil, fmt.Errorf("bot id %q is not a safe directory name", id)
	}
	if err := os.MkdirAll(m.dir, 0o700); err != nil {
		return nil, nil, fmt.Errorf("bots directory: %w", err)
	}
	if root, err = nofollow.Open(m.dir); err != nil {
		return nil, nil, fmt.Errorf("bots directory: %w", err)
	}
	bot, created, err := root.Mkdir(id, 0o700)
	if err == nil && !created {
		err = fixMode(bot, 0o700)
	}
	if err != nil {
		root.Close()
		return nil, nil, fmt.Errorf("bot directory: %w", err)
	}
	return root, bot, nil
}

// prepare lays out a bot's directories for o and writes its config. With idle set, no
// container of the bot exists: then it may also migrate layout-1 directories and give whole
// trees to o. Otherwise it touches only the directories themselves, never what is in them.
func (m *Bots) prepare(bot *nofollow.Dir, spec wire.BotSpec, o owner, idle bool) error {
	if idle {
		if err := m.migrate(bot, spec.ID, o); err != nil {
			return err
		}
	}
	for _, name := range []string{stateDir, workspaceDir} {
		d, _, err := bot.Mkdir(name, 0o700)
		if err != nil {
			return fmt.Errorf("bot directory: %w", err)
		}
		err = give(d, o, 0o700, idle)
		d.Close()
		if err != nil {
			return err
		}
	}
	cfg, _, err := bot.Mkdir(configDir, 0o750)
	if err != nil {
		return fmt.Errorf("bot directory: %w", err)
	}
	defer cfg.Close()
	agent := owner{os.Getuid(), o.gid}
	if err := give(cfg, agent, 0o750, false); err != nil {
		return err
	}
	return writeConfig(cfg, spec.Config, agent)
}

// writeConfig replaces openclaw.json unless it already holds data with the right owner and
// mode.
func writeConfig(cfg *nofollow.Dir, data []byte, o owner) error {
	st, err := cfg.Lstat(configFile)
	if err == nil && st.Mode&unix.S_IFMT == unix.S_IFREG && int(st.Uid) == o.uid && int(st.Gid) == o.gid && st.Mode&0o7777 == 0o640 {
		if old, err := cfg.ReadFile(configFile, maxConfigBytes); err == nil && bytes.Equal(old, data) {
			return nil
		}
	}
	if err := cfg.WriteFile(configFile, data, 0o640, o.uid, o.gid); err != nil {
		return chownErr(fmt.Errorf("write bot config: %w", err))
	}
	return nil
}

// give makes d owned by o with mode perm. With deep set, everything beneath d is given to o
// too when d itself was not o's.
func give(d *nofollow.Dir, o owner, perm uint32, deep bool) error {
	st, err := d.Stat()
	if err != nil {
		return err
	}
	if int(st.Uid) != o.uid || int(st.Gid) != o.gid {
		// The mode first, while the agent may still own d.
		if err := fixMode(d, perm); err != nil {
			return err
		}
		if deep {
			err = d.ChownTree(o.uid, o.gid)
		} else {
			err = d.Chown(o.uid, o.gid)
		}
		if err != nil {
			return chownErr(fmt.Errorf("bot directory owner: %w", err))
		}
	}
	return fixMode(d, perm)
}

func fixMode(d *nofollow.Dir, perm uint32) error {
	st, err := d.Stat()
	if err != nil {
		return err
	}
	if st.Mode&0o7777 == perm {
		return nil
	}
	if err := d.Chmod(fs.FileMode(perm)); err != nil {
		return chownErr(fmt.Errorf("bot directory mode: %w", err))
	}
	return nil
}

// chownErr says what to do when the agent may not change owners.
func chownErr(err error) error {
	if errors.Is(err, unix.EPERM) {
		return fmt.Errorf("%w (%v)", errCannotChown, err)
	}
	return err
}

// migrate turns layout 1's <id>/config — the gateway's writable state dir, openclaw.json and
// all — into <id>/state, given to o with the workspace. It runs only while no container of the
// bot exists. The old tree was the container's to write, so the walk that gives it to o never
// follows a link.
func (m *Bots) migrate(bot *nofollow.Dir, id string, o owner) error {
	if _, err := bot.Lstat(stateDir); err == nil {
		return nil
	} else if !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("bot directory: %w", err)
	}
	old, err := bot.OpenDir(configDir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil // a new bot
	}
	if err != nil {
		return fmt.Errorf("migrate bot directories: %w", err)
	}
	defer old.Close()
	if err := fixMode(old, 0o700); err != nil {
		return fmt.Errorf("migrate bot directories: %w", err)
	}
	if err := old.ChownTree(o.uid, o.gid); err != nil {
		return chownErr(fmt.Errorf("migrate bot directories: %w", err))
	}
	if ws, err := bot.OpenDir(workspaceDir); err == nil {
		err = ws.ChownTree(o.uid, o.gid)
		ws.Close()
		if err != nil {
			return chownErr(fmt.Errorf("migrate bot workspace: %w", err))
		}
	} else if !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("migrate bot workspace: %w", err)
	}
	if err := bot.Rename(configDir, stateDir); err != nil {
		return fmt.Errorf("migrate bot directories: %w", err)
	}
	m.log.Info("bot directories migrated to the current layout", "bot_id", id, "uid", o.uid)
	return nil
}

// purge removes a bot's directories, never following a link in them, and frees its uid.
func (m *Bots) purge(id string) error {
	if !validID(id) {
		return fmt.Errorf("bot id %q is not a safe directory name", id)
	}
	root, err := nofollow.Open(m.dir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	defer root.Close()
	if err := root.RemoveAll(id); err != nil {
		return err
	}
	m.uids.forget(id)
	return nil
}
