package bootflow

import (
	"fmt"
	"unsafe"

	"golang.org/x/sys/unix"
)

// Reboot commands of reboot(2), as uint32 so that they fit on 32-bit ARM.
const (
	rebootRestart  uint32 = unix.LINUX_REBOOT_CMD_RESTART
	rebootRestart2 uint32 = unix.LINUX_REBOOT_CMD_RESTART2
)

// SysReboot calls reboot(2) directly. x/sys/unix.Reboot cannot pass the
// argument RESTART2 needs ("0 tryboot"), hence the raw syscall.
func SysReboot(cmd uint32, arg string) error {
	var p *byte
	if arg != "" {
		var err error
		if p, err = unix.BytePtrFromString(arg); err != nil {
			return err
		}
	}
	_, _, errno := unix.Syscall6(unix.SYS_REBOOT, unix.LINUX_REBOOT_MAGIC1, unix.LINUX_REBOOT_MAGIC2,
		uintptr(cmd), uintptr(unsafe.Pointer(p)), 0, 0)
	if errno != 0 {
		return fmt.Errorf("reboot(0x%08x, %q): %w", cmd, arg, errno)
	}
	return nil
}

// plainReboot syncs file systems and restarts the machine. It is the
// last step after the caller has stopped services and unmounted what it
// could; reboot(2) itself does not shut anything down.
func plainReboot(env Env) error {
	unix.Sync()
	return env.RebootFn(rebootRestart, "")
}
