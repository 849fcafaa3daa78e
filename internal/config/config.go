// Package config loads a daemon's settings from flags, environment variables and a YAML file
// with one viper instance per command, refusing unknown keys and values of the wrong type.
package config

import (
	"errors"
	"fmt"
	"os"
	"reflect"
	"strings"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
	"github.com/spf13/viper"
)

// Load fills dst (a struct with mapstructure tags named like the flags) from, in order of
// precedence: the command's flags that were set, environment variables <prefix>_<FLAG_NAME>
// (dashes become underscores), the YAML file at path (skipped when path is "" or, if
// optional, missing), and the flags' defaults.
func Load(cmd *cobra.Command, prefix, path string, optional bool, dst any) error {
	v := viper.New()
	v.SetEnvPrefix(prefix)
	v.SetEnvKeyReplacer(strings.NewReplacer("-", "_", ".", "_"))
	v.AutomaticEnv()
	// Keys of nested sections (stripe.secret_key) have no flag, so viper knows them only
	// when told: bind each to its variable (PMD_STRIPE_SECRET_KEY).
	for _, k := range nestedKeys(reflect.TypeOf(dst), "") {
		if err := v.BindEnv(k); err != nil {
			return err
		}
	}
	var bindErr error
	cmd.Flags().VisitAll(func(f *pflag.Flag) {
		if f.Name == "help" || f.Name == "config" || bindErr != nil {
			return
		}
		if _, ok := f.Annotations[notSetting]; ok {
			return
		}
		bindErr = v.BindPFlag(f.Name, f)
	})
	if bindErr != nil {
		return bindErr
	}
	if path != "" {
		v.SetConfigFile(path)
		v.SetConfigType("yaml")
		if err := v.ReadInConfig(); err != nil {
			var pe *os.PathError
			if !(optional && errors.As(err, &pe) && errors.Is(err, os.ErrNotExist)) {
				return fmt.Errorf("config %s: %w", path, cleanErr(err))
			}
		}
	}
	err := v.UnmarshalExact(dst)
	if err != nil {
		where := "config"
		if path != "" {
			where = "config " + path
		}
		return fmt.Errorf("%s: %w", where, cleanErr(err))
	}
	return nil
}

// notSetting marks a flag that is a command's own argument, not a daemon setting.
const notSetting = "pocketmolt/not-a-setting"

// NotSettings marks flags of fs as a command's own arguments (an output file, say): Load
// leaves them out, so they are neither read from the file or the environment nor refused as
// unknown keys of dst.
func NotSettings(fs *pflag.FlagSet, names ...string) {
	for _, n := range names {
		_ = fs.SetAnnotation(n, notSetting, []string{"true"})
	}
}

func cleanErr(err error) error {
	msg := err.Error()
	msg = strings.ReplaceAll(msg, "\n", "; ")
	msg = strings.ReplaceAll(msg, "* ", "")
	return errors.New(strings.TrimSpace(msg))
}

// nestedKeys lists the dotted keys of the leaves of t's struct-typed fields ("stripe.api_base"),
// by their mapstructure tags. Top-level leaves are left out: their flags bind them.
func nestedKeys(t reflect.Type, prefix string) []string {
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	if t.Kind() != reflect.Struct {
		return nil
	}
	var out []string
	for i := range t.NumField() {
		f := t.Field(i)
		name, _, _ := strings.Cut(f.Tag.Get("mapstructure"), ",")
		if name == "" || name == "-" || !f.IsExported() {
			continue
		}
		key := name
		if prefix != "" {
			key = prefix + "." + name
		}
		ft := f.Type
		if ft.Kind() == reflect.Struct && ft.PkgPath() != "time" {
			out = append(out, nestedKeys(ft, key)...)
		} else if prefix != "" {
			out = append(out, key)
		}
	}
	return out
}
