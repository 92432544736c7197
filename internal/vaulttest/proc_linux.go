package vaulttest

import (
	"os/exec"
	"syscall"
)

// setProcAttr puts the server in its own process group, so Stop can kill it
// with any children, and asks Linux to kill it if the thread that started it
// dies (the test binary crashed or was killed), so no server outlives its
// tests. Start runs the process from a goroutine locked to its OS thread
// until the process ends, which keeps that thread alive as long as needed.
func setProcAttr(cmd *exec.Cmd) {
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
}

// killGroup kills the process group led by pid.
func killGroup(pid int) error {
	if err := syscall.Kill(-pid, syscall.SIGKILL); err != nil && err != syscall.ESRCH {
		return err
	}
	return nil
}

// terminateGroup asks the process group led by pid to end (SIGTERM).
func terminateGroup(pid int) error {
	if err := syscall.Kill(-pid, syscall.SIGTERM); err != nil && err != syscall.ESRCH {
		return err
	}
	return nil
}
