package main

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"time"
)

// clockTicks returns the kernel's USER_HZ, the unit of utime and stime in
// /proc/PID/stat, from `getconf CLK_TCK`; if that fails it assumes 100, the
// value on every common Linux architecture, and says so.
func clockTicks() (hz int64, source string) {
	out, err := exec.Command("getconf", "CLK_TCK").Output()
	if err == nil {
		if v, err := strconv.ParseInt(strings.TrimSpace(string(out)), 10, 64); err == nil && v > 0 {
			return v, "getconf"
		}
	}
	return 100, "assumed"
}

// cpuTicks returns utime+stime of pid ("self" for this process) in clock
// ticks.
func cpuTicks(pid string) (int64, error) {
	data, err := os.ReadFile("/proc/" + pid + "/stat")
	if err != nil {
		return 0, err
	}
	return parseStatTicks(data)
}

// parseStatTicks reads utime (field 14) and stime (field 15) of a
// /proc/PID/stat line. The command name (field 2) is in parentheses and may
// itself hold spaces and parentheses, so fields are counted from the last
// ')'.
func parseStatTicks(data []byte) (int64, error) {
	i := bytes.LastIndexByte(data, ')')
	if i < 0 {
		return 0, errors.New("malformed /proc stat line")
	}
	f := strings.Fields(string(data[i+1:]))
	// f[0] is field 3 (state): utime is f[11], stime f[12].
	if len(f) < 13 {
		return 0, errors.New("short /proc stat line")
	}
	u, err1 := strconv.ParseInt(f[11], 10, 64)
	s, err2 := strconv.ParseInt(f[12], 10, 64)
	if err1 != nil || err2 != nil {
		return 0, fmt.Errorf("bad utime/stime %q %q", f[11], f[12])
	}
	return u + s, nil
}

// cpuMeter measures a process's CPU time over a window.
type cpuMeter struct {
	pid   string
	hz    int64
	start int64
	err   error
}

func newCPUMeter(pid string, hz int64) *cpuMeter {
	m := &cpuMeter{pid: pid, hz: hz}
	m.start, m.err = cpuTicks(pid)
	return m
}

// since returns the CPU time used since the meter was made.
func (m *cpuMeter) since() (time.Duration, error) {
	if m.err != nil {
		return 0, m.err
	}
	end, err := cpuTicks(m.pid)
	if err != nil {
		return 0, err
	}
	return time.Duration(end-m.start) * time.Second / time.Duration(m.hz), nil
}

// busyTicks returns the busy time (everything but idle and iowait) of one
// line of /proc/stat: "cpu" for the machine, "cpuN" for one CPU.
func busyTicks(name string) (int64, error) {
	data, err := os.ReadFile("/proc/stat")
	if err != nil {
		return 0, err
	}
	for line := range strings.Lines(string(data)) {
		f := strings.Fields(line)
		if len(f) < 9 || f[0] != name {
			continue
		}
		var busy int64
		// user nice system idle iowait irq softirq steal; guest time is
		// already in user.
		for i, v := range f[1:9] {
			if i == 3 || i == 4 {
				continue
			}
			n, err := strconv.ParseInt(v, 10, 64)
			if err != nil {
				return 0, fmt.Errorf("/proc/stat %s: %w", name, err)
			}
			busy += n
		}
		return busy, nil
	}
	return 0, fmt.Errorf("/proc/stat has no %q line", name)
}

// pinnedCPU returns "cpuN" if pid may run on CPU N only, else "".
func pinnedCPU(pid string) string {
	data, err := os.ReadFile("/proc/" + pid + "/status")
	if err != nil {
		return ""
	}
	for line := range strings.Lines(string(data)) {
		if v, ok := strings.CutPrefix(line, "Cpus_allowed_list:"); ok {
			v = strings.TrimSpace(v)
			if _, err := strconv.Atoi(v); err == nil {
				return "cpu" + v
			}
			return ""
		}
	}
	return ""
}

// busyMeter measures a /proc/stat line's busy time over a window.
type busyMeter struct {
	name  string
	hz    int64
	start int64
	err   error
}

func newBusyMeter(name string, hz int64) *busyMeter {
	m := &busyMeter{name: name, hz: hz}
	m.start, m.err = busyTicks(name)
	return m
}

func (m *busyMeter) since() (time.Duration, error) {
	if m.err != nil {
		return 0, m.err
	}
	end, err := busyTicks(m.name)
	if err != nil {
		return 0, err
	}
	return time.Duration(end-m.start) * time.Second / time.Duration(m.hz), nil
}
