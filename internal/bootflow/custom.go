package bootflow

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os/exec"
	"strings"
)

// custom delegates to a controller executable, called as
// `<controller> <op> [<group>]`. It prints a JSON object: {"group":"<name>"}
// for get_default, {} for everything else; a non-zero exit is a failure.
// Controllers should ignore operations and arguments they do not know.
type custom struct{ env Env }

func (c *custom) Name() string { return Custom }

// run calls the controller and decodes its JSON object into out.
func (c *custom) run(out any, op string, args ...string) error {
	cmd := exec.Command(c.env.Controller, append([]string{op}, args...)...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		if msg := strings.TrimSpace(stderr.String()); msg != "" {
			return fmt.Errorf("boot flow controller %s %s: %w: %s", c.env.Controller, op, err, msg)
		}
		return fmt.Errorf("boot flow controller %s %s: %w", c.env.Controller, op, err)
	}
	var obj map[string]json.RawMessage
	if err := json.Unmarshal(stdout.Bytes(), &obj); err != nil || obj == nil {
		if err == nil {
			err = errors.New("not a JSON object")
		}
		return fmt.Errorf("boot flow controller %s %s: invalid output %q: %w", c.env.Controller, op, stdout.String(), err)
	}
	if out != nil {
		if err := json.Unmarshal(stdout.Bytes(), out); err != nil {
			return fmt.Errorf("boot flow controller %s %s: invalid output %q: %w", c.env.Controller, op, stdout.String(), err)
		}
	}
	return nil
}

func (c *custom) op(op, group string) error {
	if err := checkGroup(c.env.Groups, group); err != nil {
		return err
	}
	return c.run(nil, op, group)
}

func (c *custom) Default() (string, error) {
	var out struct {
		Group *string `json:"group"`
	}
	if err := c.run(&out, "get_default"); err != nil {
		return "", err
	}
	if out.Group == nil {
		return "", fmt.Errorf("boot flow controller %s get_default: no \"group\" in its output", c.env.Controller)
	}
	if err := checkGroup(c.env.Groups, *out.Group); err != nil {
		return "", fmt.Errorf("boot flow controller %s get_default: %w", c.env.Controller, err)
	}
	return *out.Group, nil
}

func (c *custom) SetTryNext(group string) error  { return c.op("set_try_next", group) }
func (c *custom) Commit(active string) error     { return c.op("commit", active) }
func (c *custom) PreInstall(group string) error  { return c.op("pre_install", group) }
func (c *custom) PostInstall(group string) error { return c.op("post_install", group) }
func (c *custom) MarkGood(group string) error    { return c.op("mark_good", group) }
func (c *custom) MarkBad(group string) error     { return c.op("mark_bad", group) }

// Reboot is a plain reboot: whatever the controller armed stays armed.
func (c *custom) Reboot(bool) error { return plainReboot(c.env) }
