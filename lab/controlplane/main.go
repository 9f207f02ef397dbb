// Command kube is the lab's Kubernetes control plane in one binary, built from
// upstream k8s.io/kubernetes at the release pinned in go.mod. The component is
// chosen by the name it is called by (argv[0]) or by its first argument:
//
//	kube kube-apiserver --etcd-servers=...
//	kube etcd --data-dir=...
//	kubectl get pods          (a symlink named kubectl)
package main

import (
	"fmt"
	"os"
	"path/filepath"

	"github.com/spf13/cobra"
	"go.etcd.io/etcd/server/v3/etcdmain"
	"k8s.io/component-base/cli"
	_ "k8s.io/component-base/logs/json/register"
	_ "k8s.io/component-base/metrics/prometheus/clientgo"
	_ "k8s.io/component-base/metrics/prometheus/version"
	kubectlcmd "k8s.io/kubectl/pkg/cmd"
	kubectlutil "k8s.io/kubectl/pkg/cmd/util"
	apiserver "k8s.io/kubernetes/cmd/kube-apiserver/app"
	controllermanager "k8s.io/kubernetes/cmd/kube-controller-manager/app"
	scheduler "k8s.io/kubernetes/cmd/kube-scheduler/app"
)

var components = map[string]func() *cobra.Command{
	"kube-apiserver":          apiserver.NewAPIServerCommand,
	"kube-controller-manager": controllermanager.NewControllerManagerCommand,
	"kube-scheduler":          func() *cobra.Command { return scheduler.NewSchedulerCommand() },
}

func main() {
	name, args := component(os.Args)
	switch {
	case name == "etcd":
		etcdmain.Main(append([]string{"etcd"}, args...))
	case name == "kubectl":
		command := kubectlcmd.NewDefaultKubectlCommand()
		command.SetArgs(args)
		if err := cli.RunNoErrOutput(command); err != nil {
			kubectlutil.CheckErr(err)
		}
	case components[name] != nil:
		command := components[name]()
		command.SetArgs(args)
		os.Exit(cli.Run(command))
	default:
		fmt.Fprintf(os.Stderr, "usage: kube etcd|kube-apiserver|kube-controller-manager|kube-scheduler|kubectl [ARGS]\n")
		os.Exit(2)
	}
}

// component returns the component named by argv[0] (a symlink) or else by the first argument.
func component(argv []string) (string, []string) {
	base := filepath.Base(argv[0])
	if base == "etcd" || base == "kubectl" || components[base] != nil {
		return base, argv[1:]
	}
	if len(argv) > 1 {
		return argv[1], argv[2:]
	}
	return "", nil
}
