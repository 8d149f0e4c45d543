// Package routing manages the routing keygate keeps in its database
// (deployments, model aliases and passthrough services) beside what its
// configuration file declares: how the two combine into the one routing a
// node serves, what a change would do, and which keys a change would leave
// with nothing to reach.
//
// How the file and the database combine: they are merged, and a name is
// defined in one place only. Deployments, aliases and services each have
// their own names; a database entry may use what the file defines (an
// alias may list a file deployment), while the file, checked before the
// database is read, uses only its own. The admin API refuses to create an
// entry under a name the file holds, and a node refuses to start when the
// file and the database both define a name, naming both. File entries are
// read-only through the API; they change with the file and a restart. The
// breaker settings stay in the file.
package routing

import (
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"regexp"
	"slices"
	"sort"
	"strings"

	"github.com/keygate/keygate/internal/config"
	"github.com/keygate/keygate/internal/route"
	"github.com/keygate/keygate/internal/store"
)

// Where an entry is defined.
const (
	SourceFile     = "file"
	SourceDatabase = "database"
)

// Entry is one deployment, alias or service: exactly one of Deployment,
// Alias and Service is set, as Kind says.
type Entry struct {
	Kind       string // store.RoutingDeployment, store.RoutingAlias or store.RoutingService
	Name       string
	Source     string // SourceFile or SourceDatabase
	Deployment *config.Deployment
	Alias      *config.Alias
	Service    *config.Service
	// Stored is the database row, for a database entry.
	Stored *store.RoutingEntry
}

// Key identifies an entry: its kind and name.
func (e Entry) Key() string { return e.Kind + " " + e.Name }

// Spec returns the entry's definition as the database keeps it: JSON in
// the configuration file's shape.
func (e Entry) Spec() ([]byte, error) {
	switch e.Kind {
	case store.RoutingDeployment:
		d := *e.Deployment
		d.Name = e.Name
		return json.Marshal(d)
	case store.RoutingAlias:
		return json.Marshal(*e.Alias)
	case store.RoutingService:
		return json.Marshal(*e.Service)
	}
	return nil, fmt.Errorf("routing: unknown kind %q", e.Kind)
}

// Same reports whether two entries have the same definition.
func Same(a, b Entry) bool {
	sa, errA := a.Spec()
	sb, errB := b.Spec()
	return errA == nil && errB == nil && string(sa) == string(sb)
}

// Decode reads a database row into an Entry.
func Decode(row store.RoutingEntry) (Entry, error) {
	e := Entry{Kind: row.Kind, Name: row.Name, Source: SourceDatabase, Stored: &row}
	var err error
	switch row.Kind {
	case store.RoutingDeployment:
		e.Deployment = new(config.Deployment)
		err = json.Unmarshal(row.Spec, e.Deployment)
		e.Deployment.Name = row.Name
	case store.RoutingAlias:
		e.Alias = new(config.Alias)
		err = json.Unmarshal(row.Spec, e.Alias)
	case store.RoutingService:
		e.Service = new(config.Service)
		err = json.Unmarshal(row.Spec, e.Service)
	default:
		err = fmt.Errorf("unknown kind %q", row.Kind)
	}
	if err != nil {
		return Entry{}, fmt.Errorf("routing: the database's %s %q cannot be read (%v); replace it with keygate apply or remove it", row.Kind, row.Name, err)
	}
	return e, nil
}

// DecodeAll reads database rows into entries.
func DecodeAll(rows []store.RoutingEntry) ([]Entry, error) {
	out := make([]Entry, 0, len(rows))
	var errs []error
	for _, r := range rows {
		e, err := Decode(r)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		out = append(out, e)
	}
	return out, errors.Join(errs...)
}

// FileEntries lists what the configuration file defines, as entries.
func FileEntries(r config.Routing, svcs map[string]config.Service) []Entry {
	var out []Entry
	for _, d := range r.Deployments {
		out = append(out, Entry{Kind: store.RoutingDeployment, Name: d.Name, Source: SourceFile, Deployment: &d})
	}
	for _, name := range slices.Sorted(maps.Keys(r.Aliases)) {
		a := r.Aliases[name]
		out = append(out, Entry{Kind: store.RoutingAlias, Name: name, Source: SourceFile, Alias: &a})
	}
	for _, name := range slices.Sorted(maps.Keys(svcs)) {
		s := svcs[name]
		out = append(out, Entry{Kind: store.RoutingService, Name: name, Source: SourceFile, Service: &s})
	}
	return out
}

// Set is a whole routing: deployments and aliases (with the file's breaker
// settings) and passthrough services.
type Set struct {
	Routing  config.Routing
	Services map[string]config.Service
}

// File is the routing a configuration file defines, before the database is read.
type File struct {
	Routing  config.Routing
	Services map[string]config.Service
}

// Merge combines the file's routing with the database's entries. A name
// both define is an error naming both places.
func Merge(file File, db []Entry) (Set, error) {
	set := Set{Routing: config.Routing{Breaker: file.Routing.Breaker, Aliases: map[string]config.Alias{}}, Services: map[string]config.Service{}}
	set.Routing.Deployments = append(set.Routing.Deployments, file.Routing.Deployments...)
	maps.Copy(set.Routing.Aliases, file.Routing.Aliases)
	maps.Copy(set.Services, file.Services)
	inFile := map[string]bool{}
	for _, e := range FileEntries(file.Routing, file.Services) {
		inFile[e.Key()] = true
	}
	var errs []error
	for _, e := range db {
		if inFile[e.Key()] {
			errs = append(errs, &ConflictError{Kind: e.Kind, Name: e.Name})
			continue
		}
		switch e.Kind {
		case store.RoutingDeployment:
			set.Routing.Deployments = append(set.Routing.Deployments, *e.Deployment)
		case store.RoutingAlias:
			set.Routing.Aliases[e.Name] = *e.Alias
		case store.RoutingService:
			set.Services[e.Name] = *e.Service
		}
	}
	return set, errors.Join(errs...)
}

// ConflictError means the configuration file and the database both define
// an entry of one name.
type ConflictError struct{ Kind, Name string }

func (e *ConflictError) Error() string {
	return fmt.Sprintf("%s %q is defined in the configuration file (%s) and in the database (keygate route show %s %s); "+
		"remove one of them: keygate route remove %s %s, or delete it from the file",
		e.Kind, e.Name, fileField(e.Kind), e.Kind, e.Name, e.Kind, e.Name)
}

// fileField names where the file defines entries of a kind.
func fileField(kind string) string {
	switch kind {
	case store.RoutingDeployment:
		return "routing.deployments"
	case store.RoutingAlias:
		return "routing.aliases"
	}
	return "services"
}

// Check validates a whole routing: every deployment, alias and service, and
// that every alias names declared deployments.
func Check(set Set) error {
	var errs []error
	if err := route.ValidateRouting(set.Routing); err != nil {
		errs = append(errs, err)
	}
	if _, err := route.ParseServices(set.Services); err != nil {
		errs = append(errs, err)
	}
	if len(errs) == 0 {
		return nil
	}
	// The checks speak of the configuration file; here they judge the
	// merged routing, wherever an entry came from.
	msg := errors.Join(errs...).Error()
	msg = strings.NewReplacer("config: routing: ", "", "config: services.", "service ", "declared under routing.deployments", "declared").Replace(msg)
	return errors.New(msg)
}

var (
	deploymentName = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._:@+-]{0,127}$`)
	aliasName      = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._:@+/-]{0,127}$`)
)

// CheckName refuses a name the database cannot keep for its kind: an
// alias is a model name (letters, digits and . _ : @ + - /); a
// deployment's is the same without / (a pool's members are named
// deployment/provider); a service's is a path segment.
func CheckName(kind, name string) error {
	switch kind {
	case store.RoutingDeployment:
		if !deploymentName.MatchString(name) {
			return fmt.Errorf("deployment name %q must be 1-128 letters, digits, '.', '_', ':', '@', '+' or '-', starting with a letter or digit", name)
		}
	case store.RoutingAlias:
		if !aliasName.MatchString(name) || strings.Contains(name, "//") || strings.HasSuffix(name, "/") {
			return fmt.Errorf("alias name %q must be 1-128 letters, digits, '.', '_', ':', '@', '+', '-' or '/', starting with a letter or digit", name)
		}
	case store.RoutingService:
		// ParseService (in Check) holds service names to its rules.
		if name == "" {
			return errors.New("a service needs a name")
		}
	default:
		return fmt.Errorf("kind %q must be deployment, alias or service", kind)
	}
	return nil
}

// Kinds lists the kinds of entry, in the order they are shown.
func Kinds() []string {
	return []string{store.RoutingDeployment, store.RoutingAlias, store.RoutingService}
}

// Sort orders entries by kind (deployments, aliases, services) and name.
func Sort(es []Entry) {
	rank := map[string]int{store.RoutingDeployment: 0, store.RoutingAlias: 1, store.RoutingService: 2}
	sort.SliceStable(es, func(i, j int) bool {
		if es[i].Kind != es[j].Kind {
			return rank[es[i].Kind] < rank[es[j].Kind]
		}
		return es[i].Name < es[j].Name
	})
}
