// `ddaq sweep`: the plan, the child processes, the SLURM script and the
// Pareto table/plot. No LibTorch here: a point is a `ddaq train` and a
// `ddaq eval` process, so a failing point cannot take the sweep down.
#include "ddaq/core/sweep.h"

#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cmath>
#include <cstdlib>
#include <deque>
#include <filesystem>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <set>
#include <sstream>
#include <thread>

#include "ddaq/core/plot.h"
#include "ddaq/error.h"
#include "ddaq/files.h"
#include "ddaq/interrupts.h"

extern char** environ;

namespace ddaq {
namespace {

namespace fs = std::filesystem;

bool is_file(const std::string& p) {
  std::error_code ec;
  return fs::is_regular_file(p, ec);
}

std::string read_all(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw Error(path + ": cannot read");
  std::ostringstream s;
  s << in.rdbuf();
  return s.str();
}

std::string hex(uint64_t v) {
  char buf[20];
  std::snprintf(buf, sizeof buf, "%016llx", static_cast<unsigned long long>(v));
  return buf;
}

// A value as part of a folder name: letters, digits, '.', '-', '+' kept.
std::string name_part(const std::string& v) {
  std::string s;
  for (char c : v) s += (std::isalnum(static_cast<unsigned char>(c)) || c == '.' || c == '-' || c == '+') ? c : '-';
  return s;
}

std::string shell_quote(const std::string& s) {
  std::string q = "'";
  for (char c : s) q += c == '\'' ? std::string("'\\''") : std::string(1, c);
  return q + "'";
}

std::string shell_line(const std::vector<std::string>& argv) {
  std::string s;
  for (const auto& a : argv) s += (s.empty() ? "" : " ") + shell_quote(a);
  return s;
}

bool trained(const SweepPoint& p) { return is_file(p.run + "/decoder.pt"); }
bool evaluated(const SweepPoint& p) { return trained(p) && is_file(p.run + "/eval.json"); }

// The last "ddaq: error: ..." line of a point's log (why it failed).
std::string failure_reason(const std::string& log) {
  std::ifstream in(log);
  std::string line, last;
  while (std::getline(in, line))
    if (line.rfind("ddaq: ", 0) == 0) last = line;
  for (const char* prefix : {"ddaq: error: ", "ddaq: "})
    if (last.rfind(prefix, 0) == 0) return last.substr(std::string(prefix).size());
  return "see " + log;
}

}  // namespace

BudgetAxis parse_budget_axis(const std::string& spec) {
  const auto eq = spec.find('=');
  if (eq == std::string::npos || eq == 0 || eq + 1 == spec.size())
    throw Error("--budget '" + spec + "': expected NAME=V1,V2,... (e.g. elinks=2,3,4)");
  BudgetAxis axis;
  axis.name = spec.substr(0, eq);
  for (char c : axis.name)
    if (!std::isalnum(static_cast<unsigned char>(c)) && c != '_')
      throw Error("--budget '" + spec + "': '" + axis.name + "' is not a budget name");
  std::stringstream values(spec.substr(eq + 1));
  std::string v;
  std::set<double> seen;
  while (std::getline(values, v, ',')) {
    char* end = nullptr;
    const double x = std::strtod(v.c_str(), &end);
    if (v.empty() || end != v.c_str() + v.size() || !std::isfinite(x) || x <= 0)
      throw Error("--budget '" + spec + "': '" + v + "' is not a finite number > 0");
    if (!seen.insert(x).second) throw Error("--budget '" + spec + "': " + v + " is given twice");
    axis.values.push_back(v);
  }
  if (axis.values.empty() || spec.back() == ',') throw Error("--budget '" + spec + "': an empty value");
  return axis;
}

std::vector<SweepPoint> SweepPlan::points() const {
  std::vector<SweepPoint> out(1);
  for (const BudgetAxis& a : axes) {
    std::vector<SweepPoint> next;
    for (const SweepPoint& p : out)
      for (const std::string& v : a.values) {
        SweepPoint q = p;
        q.name += (q.name.empty() ? "" : "_") + a.name + name_part(v);
        q.budgets.emplace_back(a.name, v);
        next.push_back(q);
      }
    out.swap(next);
  }
  for (SweepPoint& p : out) p.run = dir + "/runs/" + p.name;
  return out;
}

std::string SweepPlan::to_json() const {
  nlohmann::json budgets = nlohmann::json::array(), points_json = nlohmann::json::array();
  for (const BudgetAxis& a : axes) budgets.push_back({{"name", a.name}, {"values", a.values}});
  for (const SweepPoint& p : points()) {
    nlohmann::json b = nlohmann::json::object();
    for (const auto& kv : p.budgets) b[kv.first] = kv.second;
    points_json.push_back({{"name", p.name}, {"budgets", b}, {"run", "runs/" + p.name}});
  }
  const std::string text = read_all(config);
  return nlohmann::json({{"kind", "ddaq-sweep-1"},
                         {"config", config},
                         {"config_hash", hex(fnv1a(text.data(), text.size()))},
                         {"train", train_file},
                         {"test", test_file},
                         {"eval_events", eval_events},
                         {"budgets", budgets},
                         {"points", points_json}})
      .dump(2);
}

void SweepPlan::check_same_as_saved() const {
  const std::string path = dir + "/sweep.json";
  nlohmann::json saved, now = nlohmann::json::parse(to_json());
  try {
    saved = nlohmann::json::parse(read_all(path));
  } catch (const nlohmann::json::exception&) {
    throw Error(path + ": not a sweep plan (unreadable JSON)");
  }
  if (saved.value("kind", "") != "ddaq-sweep-1") throw Error(path + ": not a sweep plan (kind)");
  for (const char* key : {"config", "config_hash", "train", "test", "eval_events", "budgets"})
    if (saved[key] != now[key])
      throw Error(path + ": the sweep was planned with another " +
                  (std::string(key) == "config_hash" ? std::string("config content") : std::string(key)) + " (" +
                  saved[key].dump() + "); --overwrite replaces it");
}

std::vector<std::string> SweepPlan::train_command(const SweepPoint& p, const std::string& executable,
                                                  bool resume) const {
  std::vector<std::string> argv = {executable, "train", config, "-o", p.run, "--data", train_file};
  for (const auto& kv : p.budgets) {
    argv.push_back("--budget");
    argv.push_back(kv.first + "=" + kv.second);
  }
  argv.push_back(resume ? "--resume" : "--overwrite");
  return argv;
}

std::vector<std::string> SweepPlan::eval_command(const SweepPoint& p, const std::string& executable) const {
  return {executable, "eval", p.run, "--data", test_file, "--events", std::to_string(eval_events)};
}

std::string slurm_script(const SweepPlan& plan, const std::string& executable, int cpus_per_task) {
  const std::vector<SweepPoint> pts = plan.points();
  std::ostringstream s;
  s << "#!/bin/bash\n"
    << "# ddaq sweep: one array task per point (written by `ddaq sweep --slurm`; edit the #SBATCH lines\n"
    << "# for your cluster: partition, time, account). Submit from any folder:\n"
    << "#   sbatch " << plan.dir << "/sweep.slurm\n"
    << "# When the array has finished, the same `ddaq sweep` command with --resume writes pareto.csv\n"
    << "# and pareto.png (finished points are not run again; missing ones run there).\n"
    << "#SBATCH --job-name=ddaq-sweep\n"
    << "#SBATCH --array=0-" << pts.size() - 1 << "\n"
    << "#SBATCH --ntasks=1\n"
    << "#SBATCH --cpus-per-task=" << cpus_per_task << "\n"
    << "#SBATCH --output=" << plan.dir << "/logs/slurm-%A_%a.out\n"
    << "set -euo pipefail\n"
    << "case \"${SLURM_ARRAY_TASK_ID:?run under sbatch, or set SLURM_ARRAY_TASK_ID}\" in\n";
  for (size_t i = 0; i < pts.size(); ++i) {
    std::vector<std::string> train = plan.train_command(pts[i], executable, false);
    train.pop_back();  // --overwrite or --resume, chosen below
    s << "  " << i << ") point=" << shell_quote(pts[i].name) << "\n     train() { " << shell_line(train)
      << " \"$@\"; } ;;\n";
  }
  const std::vector<std::string> eval = plan.eval_command(pts.front(), executable);
  s << "  *) echo \"no point $SLURM_ARRAY_TASK_ID (0-" << pts.size() - 1 << ")\" >&2; exit 2 ;;\n"
    << "esac\n"
    << "run=" << shell_quote(plan.dir + "/runs") << "/$point\n"
    << "exec >>" << shell_quote(plan.dir + "/logs") << "/$point.log 2>&1\n"
    << "# Done: decoder.pt (training finished) and eval.json. Interrupted: resume from its checkpoint.\n"
    << "if [ ! -f \"$run/decoder.pt\" ]; then\n"
    << "  if [ -f \"$run/checkpoint.pt\" ]; then train --resume; else train --overwrite; fi\n"
    << "fi\n"
    << "[ -f \"$run/eval.json\" ] || " << shell_quote(executable) << " eval \"$run\" --data " << shell_quote(eval[4])
    << " --events " << eval[6] << "\n";
  return s.str();
}

std::vector<PointOutcome> run_sweep(const SweepPlan& plan, const std::string& executable, int jobs,
                                    std::FILE* progress) {
  using Clock = std::chrono::steady_clock;
  const std::vector<SweepPoint> pts = plan.points();
  std::vector<PointOutcome> out(pts.size());
  // Each point's time over every invocation that ran it here (state.json).
  const std::string state_path = plan.dir + "/state.json";
  nlohmann::json state = nlohmann::json::object();
  if (is_file(state_path)) {
    try {
      state = nlohmann::json::parse(read_all(state_path));
    } catch (const nlohmann::json::exception&) {
      throw Error(state_path + ": unreadable JSON (remove it to lose only the points' times)");
    }
  }
  auto save_state = [&] {
    for (const PointOutcome& o : out)
      if (o.seconds > 0) state[o.name] = {{"seconds", o.seconds}, {"status", o.status}};
    write_file_atomic(state_path, state.dump(2) + "\n");
  };
  std::deque<size_t> queue;
  for (size_t i = 0; i < pts.size(); ++i) {
    out[i].name = pts[i].name;
    if (state.contains(out[i].name) && state[out[i].name].is_object())
      out[i].seconds = state[out[i].name].value("seconds", 0.0);
    if (evaluated(pts[i]))
      out[i].status = "ok";
    else
      queue.push_back(i), out[i].status = "not run";
  }
  auto say = [&](const std::string& line) {
    if (progress) std::fprintf(progress, "sweep: %s\n", line.c_str()), std::fflush(progress);
  };
  say(std::to_string(pts.size()) + " points, " + std::to_string(pts.size() - queue.size()) + " done before, " +
      std::to_string(queue.size()) + " to run, " + std::to_string(jobs) + " at a time");
  make_directories(plan.dir + "/logs");
  make_directories(plan.dir + "/runs");
  struct Running {
    size_t index;
    pid_t pid;
    bool training;
    Clock::time_point start;
  };
  std::vector<Running> running;
  auto spawn = [&](size_t i, bool training) {
    const SweepPoint& p = pts[i];
    const std::vector<std::string> argv = training
                                              ? plan.train_command(p, executable, is_file(p.run + "/checkpoint.pt"))
                                              : plan.eval_command(p, executable);
    const std::string log = plan.dir + "/logs/" + p.name + ".log";
    {
      std::ofstream l(log, std::ios::app);
      l << "$ " << shell_line(argv) << "\n";
    }
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
    posix_spawn_file_actions_addopen(&fa, 1, log.c_str(), O_WRONLY | O_CREAT | O_APPEND, 0644);
    posix_spawn_file_actions_adddup2(&fa, 1, 2);
    posix_spawnattr_t attr;
    posix_spawnattr_init(&attr);
    // Own process group: a Ctrl-C reaches the sweep only, which passes one
    // SIGTERM on (a second signal would end a point without its checkpoint).
    sigset_t none, defaults;
    sigemptyset(&none);
    sigemptyset(&defaults);
    for (int sig : {SIGINT, SIGTERM, SIGHUP}) sigaddset(&defaults, sig);
    posix_spawnattr_setsigmask(&attr, &none);
    posix_spawnattr_setsigdefault(&attr, &defaults);
    posix_spawnattr_setpgroup(&attr, 0);
    posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETPGROUP | POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF);
    std::vector<char*> args;
    for (const auto& a : argv) args.push_back(const_cast<char*>(a.c_str()));
    args.push_back(nullptr);
    pid_t pid = 0;
    const int rc = posix_spawn(&pid, executable.c_str(), &fa, &attr, args.data(), environ);
    posix_spawn_file_actions_destroy(&fa);
    posix_spawnattr_destroy(&attr);
    if (rc != 0) throw Error(executable + ": cannot start (" + std::strerror(rc) + ")");
    running.push_back({i, pid, training, Clock::now()});
    say(p.name + ": " + (training ? "train" : "eval") + " (log " + log + ")");
  };

  CooperativeInterrupts cooperative;
  int stop_signal = 0;
  while (!queue.empty() || !running.empty()) {
    while (!stop_signal && !queue.empty() && static_cast<int>(running.size()) < jobs) {
      const size_t i = queue.front();
      queue.pop_front();
      spawn(i, !trained(pts[i]));
    }
    if (!stop_signal && interrupt_requested()) {
      stop_signal = interrupt_requested();
      for (const Running& r : running) kill(r.pid, SIGTERM);
      say("interrupted: waiting for " + std::to_string(running.size()) + " running point(s) to checkpoint");
    }
    int status = 0;
    const pid_t pid = waitpid(-1, &status, WNOHANG);
    if (pid <= 0) {
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
      continue;
    }
    auto it = std::find_if(running.begin(), running.end(), [&](const Running& r) { return r.pid == pid; });
    if (it == running.end()) continue;
    const Running r = *it;
    running.erase(it);
    PointOutcome& o = out[r.index];
    o.seconds += std::chrono::duration<double>(Clock::now() - r.start).count();
    const int code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
    const std::string log = plan.dir + "/logs/" + pts[r.index].name + ".log";
    if (code == 0 && r.training && !stop_signal) {
      spawn(r.index, false);
    } else if (code == 0 && !r.training) {
      o.status = "ok";
      char buf[32];
      std::snprintf(buf, sizeof buf, "%.1f", o.seconds);
      say(o.name + ": done in " + buf + " s");
    } else if (code == 0 || code == 128 + SIGINT || code == 128 + SIGTERM || code == 128 + SIGHUP) {
      o.status = "interrupted";
      say(o.name + ": interrupted (--resume continues it)");
    } else {
      o.status = "failed";
      o.reason = failure_reason(log);
      say(o.name + ": failed: " + o.reason);
    }
    if (o.status != "not run") save_state();
  }
  if (stop_signal)
    throw Interrupted(stop_signal, "sweep interrupted by " + signal_name(stop_signal) + "; " + plan.dir +
                                       ": the same command with --resume continues it");
  return out;
}

}  // namespace ddaq
