package harness

import (
	"fmt"
	"os"
	"os/exec"
	"sync"
	"syscall"
	"time"
)

// Process is a netpol-guard subprocess: the webhook or the node agent.
type Process struct {
	Name    string
	Args    []string
	LogPath string

	cmd     *exec.Cmd
	exited  chan struct{}
	exitErr error
	stop    sync.Once
	stopErr error
}

// startProcess runs argv with its output in logPath; the control plane stops it on Stop, and
// the kernel kills it if the test process dies first.
func startProcess(cp *ControlPlane, name string, argv []string, logPath string) (*Process, error) {
	return startProcessWith(cp, name, argv, logPath, nil)
}

// startProcessWith is startProcess with configure applied to the command before it starts
// (its directory, environment, credentials).
func startProcessWith(cp *ControlPlane, name string, argv []string, logPath string, configure func(*exec.Cmd)) (*Process, error) {
	p := &Process{Name: name, Args: argv, LogPath: logPath, exited: make(chan struct{})}
	logFile, err := os.Create(logPath)
	if err != nil {
		return nil, err
	}
	p.cmd = exec.Command(argv[0], argv[1:]...)
	p.cmd.Stdout, p.cmd.Stderr = logFile, logFile
	setDeathSignal(p.cmd)
	if configure != nil {
		configure(p.cmd)
	}
	if err := p.cmd.Start(); err != nil {
		logFile.Close()
		return nil, fmt.Errorf("starting %s: %w", argv[0], err)
	}
	go func() {
		p.exitErr = p.cmd.Wait()
		logFile.Close()
		close(p.exited)
	}()
	cp.OnStop(p.Stop)
	return p, nil
}

// PID is the process id (ip netns exec execs the agent in place: it is the agent's).
func (p *Process) PID() int { return p.cmd.Process.Pid }

// Running reports whether the process has not exited.
func (p *Process) Running() bool {
	select {
	case <-p.exited:
		return false
	default:
		return true
	}
}

// Stop sends SIGTERM and waits for the process to exit (SIGKILL after 20 s); it returns an
// error when it did not exit cleanly.
func (p *Process) Stop() error {
	p.stop.Do(func() {
		select {
		case <-p.exited:
			if p.exitErr != nil {
				p.stopErr = fmt.Errorf("%s had exited: %w", p.Name, p.exitErr)
			}
			return
		default:
		}
		_ = p.cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-p.exited:
			if p.exitErr != nil {
				p.stopErr = fmt.Errorf("%s exited on SIGTERM with %w", p.Name, p.exitErr)
			}
		case <-time.After(20 * time.Second):
			_ = p.cmd.Process.Kill()
			<-p.exited
			p.stopErr = fmt.Errorf("%s did not exit within 20s of SIGTERM; killed", p.Name)
		}
	})
	return p.stopErr
}

// Logs returns what the process has logged so far.
func (p *Process) Logs() string {
	b, err := os.ReadFile(p.LogPath)
	if err != nil {
		return fmt.Sprintf("(reading %s: %v)", p.LogPath, err)
	}
	return string(b)
}
