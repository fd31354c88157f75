// A minimal dashboard: follows one migration run (WatchRun) and one restore (RestoreJob)
// over gRPC-Web with a bearer token, shows every event it receives and keeps them in
// `window.stowageReport` for the test driver. Parameters come from the query string:
// migration, archive (service base URLs), token, run, job.
import { GrpcWebFetchTransport } from "@protobuf-ts/grpcweb-transport";
import { LongType, MessageType, ScalarType } from "@protobuf-ts/runtime";
import { ServiceType } from "@protobuf-ts/runtime-rpc";

// Only the fields the dashboard shows; the rest of each message is skipped as unknown.
// Enums are read as their numbers, 64-bit integers as JS numbers; fields keep their proto
// names (protobuf-ts would otherwise camelCase them).
const str = (no: number, name: string) =>
  ({ no, name, localName: name, kind: "scalar", T: ScalarType.STRING }) as const;
const i64 = (no: number, name: string) =>
  ({ no, name, localName: name, kind: "scalar", T: ScalarType.INT64, L: LongType.NUMBER }) as const;
const num = (no: number, name: string) =>
  ({ no, name, localName: name, kind: "scalar", T: ScalarType.INT32 }) as const;

const ItemCounts = new MessageType("stowage.migration.v1.ItemCounts", [
  i64(1, "queued"),
  i64(2, "running"),
  i64(3, "migrated"),
  i64(4, "skipped"),
  i64(5, "failed"),
]);
const Run = new MessageType("stowage.migration.v1.Run", [
  str(1, "id"),
  num(5, "state"),
  { no: 10, name: "items", kind: "message", T: () => ItemCounts },
  i64(11, "bytes_total"),
  i64(12, "bytes_migrated"),
]);
const RunItem = new MessageType("stowage.migration.v1.RunItem", [
  str(2, "artifact_id"),
  num(4, "state"),
  num(6, "cause"),
  i64(11, "outcome_sequence"),
]);
const Heartbeat = new MessageType("stowage.migration.v1.Heartbeat", []);
const RunEvent = new MessageType("stowage.migration.v1.RunEvent", [
  i64(1, "cursor"),
  { no: 2, name: "snapshot", kind: "message", oneof: "event", T: () => Run },
  { no: 3, name: "update", kind: "message", oneof: "event", T: () => Run },
  { no: 4, name: "outcome", kind: "message", oneof: "event", T: () => RunItem },
  { no: 5, name: "heartbeat", kind: "message", oneof: "event", T: () => Heartbeat },
]);
const WatchRunRequest = new MessageType("stowage.migration.v1.WatchRunRequest", [
  str(1, "id"),
  i64(2, "resume_after"),
]);
const RestoreJobRequest = new MessageType("stowage.archive.v1.RestoreJobRequest", [
  str(1, "job_id"),
  num(2, "trigger"),
]);
const RestoreProgress = new MessageType("stowage.archive.v1.RestoreProgress", [
  num(1, "phase"),
  i64(2, "rows_done"),
  i64(3, "rows_total"),
  i64(4, "bytes_read"),
  { no: 5, name: "already_hot", localName: "already_hot", kind: "scalar", T: ScalarType.BOOL },
]);

const MigrationService = new ServiceType("stowage.migration.v1.MigrationService", [
  { name: "WatchRun", serverStreaming: true, I: WatchRunRequest, O: RunEvent },
]);
const ArchiveService = new ServiceType("stowage.archive.v1.ArchiveService", [
  { name: "RestoreJob", serverStreaming: true, I: RestoreJobRequest, O: RestoreProgress },
]);

/// Everything the page saw, in arrival order per stream.
interface Report {
  watch: unknown[];
  watchStatus: string | null;
  restore: unknown[];
  restoreStatus: string | null;
  errors: string[];
  done: boolean;
}

const report: Report = {
  watch: [],
  watchStatus: null,
  restore: [],
  restoreStatus: null,
  errors: [],
  done: false,
};
(window as unknown as { stowageReport: Report }).stowageReport = report;

const params = new URLSearchParams(location.search);
const param = (name: string): string => {
  const value = params.get(name);
  if (!value) throw new Error(`missing query parameter ${name}`);
  return value;
};

function show(): void {
  const out = document.getElementById("report");
  if (out) out.textContent = JSON.stringify(report, null, 1);
}

async function follow<O extends object>(
  call: { responses: AsyncIterable<O>; status: Promise<{ code: string }> },
  type: MessageType<O>,
  into: unknown[],
): Promise<string> {
  for await (const message of call.responses) {
    into.push(type.toJson(message, { useProtoFieldName: true, emitDefaultValues: true }));
    show();
  }
  return (await call.status).code;
}

async function main(): Promise<void> {
  const meta = { authorization: `Bearer ${param("token")}` };
  // both framings gRPC-Web has: binary to one service, base64 text to the other
  const migration = new GrpcWebFetchTransport({ baseUrl: param("migration"), format: "binary" });
  const archive = new GrpcWebFetchTransport({ baseUrl: param("archive"), format: "text" });

  const watch = migration.serverStreaming(
    MigrationService.methods[0],
    WatchRunRequest.create({ id: param("run"), resume_after: 0 }),
    migration.mergeOptions({ meta }),
  );
  // RESTORE_TRIGGER_USER = 1
  const restore = archive.serverStreaming(
    ArchiveService.methods[0],
    RestoreJobRequest.create({ job_id: param("job"), trigger: 1 }),
    archive.mergeOptions({ meta }),
  );
  const settle = async (what: string, run: Promise<string>, set: (s: string) => void) => {
    try {
      set(await run);
    } catch (error) {
      report.errors.push(`${what}: ${String(error)}`);
    }
  };
  await Promise.all([
    settle("WatchRun", follow(watch, RunEvent, report.watch), (s) => (report.watchStatus = s)),
    settle("RestoreJob", follow(restore, RestoreProgress, report.restore), (s) => (report.restoreStatus = s)),
  ]);
}

main()
  .catch((error) => report.errors.push(String(error)))
  .finally(() => {
    report.done = true;
    show();
  });
