// Gating for tests that need the live kernel: they skip (with the reason in the title) only
// when the capability is truly absent, and fail instead under CI=true.
import test, { type Implementation } from 'ava'
import { existsSync, readFileSync } from 'node:fs'

function missingCapability(): string | null {
  if (process.getuid?.() !== 0) return 'not running as root'
  const mounted = readFileSync('/proc/self/mountinfo', 'utf8')
    .split('\n')
    .some((l) => l.includes(' - tracefs ') || l.includes(' - debugfs '))
  if (!mounted && !existsSync('/sys/kernel/tracing/events')) {
    return 'tracefs is not mounted (mount -t tracefs nodev /sys/kernel/tracing)'
  }
  return null
}

export const kernelReason = missingCapability()
export const inCI = process.env.CI === 'true'

type Impl = Implementation<[]>

/** A test against the live kernel. */
export function kernelTest(title: string, impl: Impl): void {
  if (kernelReason === null) {
    test(title, impl)
  } else if (inCI) {
    test(title, (t) => t.fail(`CI=true but the kernel capability is missing: ${kernelReason}`))
  } else {
    test.skip(`${title} [skipped: ${kernelReason}]`, impl)
  }
}

/** Same, run serially (tests that count fds or measure the event loop). */
export function kernelTestSerial(title: string, impl: Impl): void {
  if (kernelReason === null) {
    test.serial(title, impl)
  } else if (inCI) {
    test.serial(title, (t) => t.fail(`CI=true but the kernel capability is missing: ${kernelReason}`))
  } else {
    test.skip(`${title} [skipped: ${kernelReason}]`, impl)
  }
}
