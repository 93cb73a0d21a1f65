package bootflow

import (
	"fmt"
	"unsafe"

	"golang.org/x/sys/unix"
)

// VideoCore property tags for the firmware's reboot flags; bit 0 is the
// one-shot tryboot flag, which the firmware clears before it starts the OS.
const (
	tagGetRebootFlags uint32 = 0x00030064
	tagSetRebootFlags uint32 = 0x00038064
	mboxSuccess       uint32 = 0x80000000
	rebootFlagTryboot uint32 = 1
)

// vcioProperty is IOCTL_MBOX_PROPERTY = _IOWR(100, 0, char *). The size
// field is the size of a pointer, so the number differs between 32-bit
// ARM (0xC0046400) and arm64 (0xC0086400).
const vcioProperty = 3<<30 | uint32(unsafe.Sizeof(uintptr(0)))<<16 | 100<<8 | 0

// mboxIoctl issues the property ioctl. It is a variable because tests have
// no VideoCore: they replace it to check the request and the buffer.
var mboxIoctl = func(fd int, req uint32, buf *[7]uint32) error {
	_, _, errno := unix.Syscall(unix.SYS_IOCTL, uintptr(fd), uintptr(req), uintptr(unsafe.Pointer(buf)))
	if errno != 0 {
		return errno
	}
	return nil
}

// mboxProperty sends one property tag with a 4-byte value through the
// mailbox device dev and returns the value the firmware answered with.
func mboxProperty(dev string, tag, value uint32) (uint32, error) {
	fd, err := unix.Open(dev, unix.O_RDONLY|unix.O_NONBLOCK|unix.O_CLOEXEC, 0)
	if err != nil {
		return 0, fmt.Errorf("open %s: %w", dev, err)
	}
	defer unix.Close(fd)
	// Host-endian words: total size, request code, tag, value buffer
	// size, tag request code, value, end tag.
	buf := [7]uint32{7 * 4, 0, tag, 4, 0, value, 0}
	if err := mboxIoctl(fd, vcioProperty, &buf); err != nil {
		return 0, fmt.Errorf("mailbox tag 0x%08x on %s: %w", tag, dev, err)
	}
	if buf[1] != mboxSuccess {
		return 0, fmt.Errorf("mailbox tag 0x%08x on %s: firmware answered 0x%08x", tag, dev, buf[1])
	}
	return buf[5], nil
}

// setTrybootFlag sets or clears bit 0 of the firmware's reboot flags,
// keeping the other bits, and reads the flags back: old EEPROMs accept the
// request but ignore it.
func setTrybootFlag(dev string, on bool) error {
	flags, err := mboxProperty(dev, tagGetRebootFlags, 0)
	if err != nil {
		return err
	}
	want := flags &^ rebootFlagTryboot
	if on {
		want |= rebootFlagTryboot
	}
	if want == flags {
		return nil
	}
	if _, err := mboxProperty(dev, tagSetRebootFlags, want); err != nil {
		return err
	}
	got, err := mboxProperty(dev, tagGetRebootFlags, 0)
	if err != nil {
		return err
	}
	if got&rebootFlagTryboot != want&rebootFlagTryboot {
		return fmt.Errorf("%s: firmware kept reboot flags 0x%x after setting 0x%x (EEPROM too old for tryboot?)", dev, got, want)
	}
	return nil
}
