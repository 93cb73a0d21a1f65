# Bascule: U-Boot boot script for the rpi-uboot boot flow (as Rugix's), on
# the config partition (partition 1) of the boot disk.
#
#   bootpart.default.env  bootpart=2|3: the partition of the default group
#   boot_spare.env        boot_spare=1: boot the other group once
#
# The one-shot flag is cleared before the other group boots, so whatever
# goes wrong in that boot (panic, hang with a watchdog, reset, power cut),
# the next boot is the default group again. Only "bascule system commit"
# (writing bootpart.default.env) makes the other group the default.
#
# The kernel command line is bootargs from boot.env on the boot partition,
# which bascule rewrites after it installed an update there. An optional
# initrd.img next to the kernel is passed on.
#
# Needs FAT write support in U-Boot (CONFIG_FAT_WRITE).

if test -z "${devtype}"; then
	setenv devtype virtio
fi
if test -z "${devnum}"; then
	setenv devnum 0
fi

setenv bootpart 2
if load ${devtype} ${devnum}:1 ${kernel_addr_r} bootpart.default.env; then
	env import -c ${kernel_addr_r} ${filesize} bootpart
fi
setenv boot_spare 0
if load ${devtype} ${devnum}:1 ${kernel_addr_r} boot_spare.env; then
	env import -c ${kernel_addr_r} ${filesize} boot_spare
fi

if test "${bootpart}" = "3"; then
	setenv otherpart 2
else
	setenv bootpart 2
	setenv otherpart 3
fi

setenv trypart
if test "${boot_spare}" = "1"; then
	if load ${devtype} ${devnum}:1 ${kernel_addr_r} boot_spare.disabled.env && save ${devtype} ${devnum}:1 ${kernel_addr_r} boot_spare.env ${filesize}; then
		setenv trypart ${otherpart}
	else
		echo "bascule: cannot clear boot_spare.env, booting the default group"
	fi
fi

for part in ${trypart} ${bootpart}; do
	setenv bootargs
	if load ${devtype} ${devnum}:${part} ${kernel_addr_r} boot.env; then
		env import -c ${kernel_addr_r} ${filesize} bootargs
	fi
	if load ${devtype} ${devnum}:${part} ${kernel_addr_r} Image; then
		setenv bascule_initrd -
		if load ${devtype} ${devnum}:${part} ${ramdisk_addr_r} initrd.img; then
			setenv bascule_initrd ${ramdisk_addr_r}:${filesize}
		fi
		echo "bascule: booting partition ${part}: ${bootargs}"
		booti ${kernel_addr_r} ${bascule_initrd} ${fdtcontroladdr}
	fi
	echo "bascule: partition ${part} did not boot"
done
