// TypeDoc plugin (typedoc.json "plugin"): gives each entry of the generated
// `BuiltinTracepointFields` table (types/builtin.d.ts, one property per tracepoint, documented
// field by field but not per tracepoint) a one-line summary naming its tracepoint and format
// file, so that the API reference says what each entry is and `validation.notDocumented`
// stays quiet about the ~800 generated keys. Entries that carry a doc comment keep it.
import { Comment, Converter } from 'typedoc'

/** @param {import('typedoc').Application} app */
export function load(app) {
  app.converter.on(Converter.EVENT_RESOLVE_BEGIN, (context) => {
    const table = context.project.getChildByName('BuiltinTracepointFields')
    for (const entry of table?.children ?? []) {
      if (entry.comment || entry.hasComment()) continue
      const [system, event] = entry.name.split(':')
      entry.comment = new Comment([
        { kind: 'text', text: 'Fields of the ' },
        { kind: 'code', text: `\`${entry.name}\`` },
        { kind: 'text', text: ' tracepoint, from ' },
        { kind: 'code', text: `\`events/${system}/${event}/format\`` },
        { kind: 'text', text: ' in tracefs.' },
      ])
    }
  })
}
