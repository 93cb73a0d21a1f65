package main

import (
	"flag"
	"fmt"
	"strconv"

	"github.com/bascule-ota/bascule/internal/cli"
	"github.com/bascule-ota/bascule/internal/disk"
)

func cmdFindBlockDevice(args []string) error {
	fs := flag.NewFlagSet("utils find-block-device", flag.ContinueOnError)
	pos, err := tool.Parse("utils find-block-device", fs, args, 1, 1)
	if err != nil {
		return err
	}
	bd, err := disk.FindBlockDevice(pos[0])
	if err != nil {
		return err
	}
	return cli.PrintJSON(bd, false)
}

func cmdIsMountPoint(args []string) error {
	fs := flag.NewFlagSet("utils is-mount-point", flag.ContinueOnError)
	pos, err := tool.Parse("utils is-mount-point", fs, args, 1, 1)
	if err != nil {
		return err
	}
	ok, err := disk.IsMountPoint(pos[0])
	if err != nil {
		return err
	}
	fmt.Println(ok)
	return nil
}

func cmdResolvePartition(args []string) error {
	fs := flag.NewFlagSet("utils resolve-partition", flag.ContinueOnError)
	diskPath := fs.String("disk", "", "disk to look on (default: the root disk)")
	pos, err := tool.Parse("utils resolve-partition", fs, args, 1, 1)
	if err != nil {
		return err
	}
	n, err := strconv.Atoi(pos[0])
	if err != nil || n < 1 {
		return fmt.Errorf("utils resolve-partition: %q is not a partition number", pos[0])
	}
	d := *diskPath
	if d == "" {
		root, err := disk.RootDisk()
		if err != nil {
			return err
		}
		if root.Parent == "" {
			return fmt.Errorf("the root file system is on %s, which is not a partition of a disk", root.Device)
		}
		d = root.Parent
	}
	bd, err := disk.ResolvePartition(d, n)
	if err != nil {
		return err
	}
	return cli.PrintJSON(bd, false)
}
