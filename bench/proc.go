package bench

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"
)

// ClockTick is the unit of utime and stime in /proc/PID/stat: USER_HZ, 100
// on every Linux ABI Go supports.
const ClockTick = 10 * time.Millisecond

// ProcMem is what /proc/PID/status says of a process's memory, in KiB.
type ProcMem struct {
	RSS, HWM   int64 // VmRSS and VmHWM
	Anon, File int64 // RssAnon (heap, stacks, runtime) and RssFile (mapped binary pages)
	Threads    int64 // Threads
}

// ReadMem reads VmRSS and VmHWM of pid.
func ReadMem(pid int) (ProcMem, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return ProcMem{}, err
	}
	var m ProcMem
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		name, rest, ok := strings.Cut(sc.Text(), ":")
		if !ok {
			continue
		}
		f := strings.Fields(rest)
		if len(f) == 0 {
			continue
		}
		v, err := strconv.ParseInt(f[0], 10, 64)
		if err != nil {
			continue
		}
		switch name {
		case "VmRSS":
			m.RSS = v
		case "VmHWM":
			m.HWM = v
		case "RssAnon":
			m.Anon = v
		case "RssFile":
			m.File = v
		case "Threads":
			m.Threads = v
		}
	}
	if m.RSS == 0 {
		return m, fmt.Errorf("no VmRSS in /proc/%d/status", pid)
	}
	return m, nil
}

// ReadCPU returns utime+stime of pid (its own threads, not its children).
func ReadCPU(pid int) (time.Duration, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, err
	}
	// The command name, field 2, is in parentheses and may hold spaces.
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return 0, fmt.Errorf("/proc/%d/stat: no command name", pid)
	}
	f := strings.Fields(string(b[i+1:]))
	// After the name: state is field 3, utime field 14, stime field 15.
	if len(f) < 13 {
		return 0, fmt.Errorf("/proc/%d/stat: %d fields", pid, len(f))
	}
	u, err1 := strconv.ParseInt(f[11], 10, 64)
	s, err2 := strconv.ParseInt(f[12], 10, 64)
	if err1 != nil || err2 != nil {
		return 0, fmt.Errorf("/proc/%d/stat: bad utime/stime", pid)
	}
	return time.Duration(u+s) * ClockTick, nil
}

// Sample is the memory and CPU of one process over a window.
type Sample struct {
	Window          time.Duration
	CPU             time.Duration // utime+stime spent in the window
	RSSMean, RSSMax int64         // KiB, over samples taken every second
	RSSLast, HWM    int64         // KiB, at the end of the window
	Last            ProcMem       // the last sample
	Samples         int
}

// CPUPercent is the CPU used over the window, in percent of one core.
func (s Sample) CPUPercent() float64 {
	if s.Window <= 0 {
		return 0
	}
	return 100 * s.CPU.Seconds() / s.Window.Seconds()
}

// Watch samples the processes pids every second for window and returns one
// Sample each, in the order of pids. stop, when closed, ends the window early.
func Watch(pids []int, window time.Duration, stop <-chan struct{}) ([]Sample, error) {
	out := make([]Sample, len(pids))
	cpu0 := make([]time.Duration, len(pids))
	sums := make([]int64, len(pids))
	for i, pid := range pids {
		c, err := ReadCPU(pid)
		if err != nil {
			return nil, err
		}
		cpu0[i] = c
	}
	start := time.Now()
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	for done := false; !done; {
		select {
		case <-tick.C:
		case <-stop:
			done = true
		}
		if time.Since(start) >= window {
			done = true
		}
		for i, pid := range pids {
			m, err := ReadMem(pid)
			if err != nil {
				return nil, err
			}
			s := &out[i]
			s.Samples++
			sums[i] += m.RSS
			s.RSSMax = max(s.RSSMax, m.RSS)
			s.RSSLast, s.HWM, s.Last = m.RSS, m.HWM, m
		}
	}
	elapsed := time.Since(start)
	for i, pid := range pids {
		c, err := ReadCPU(pid)
		if err != nil {
			return nil, err
		}
		s := &out[i]
		s.Window = elapsed
		s.CPU = c - cpu0[i]
		s.RSSMean = sums[i] / int64(s.Samples)
	}
	return out, nil
}
