// Five concurrent SDK clients, unmodified: each makes CALLS calls through the
// OpenAI SDK (chat completions as JSON and as a stream, a streamed Responses
// call) or the Anthropic SDK (messages as JSON and as a stream), with the
// base URLs from the environment (OPENAI_BASE_URL, ANTHROPIC_BASE_URL), as
// `quotabar run` sets them. Prints one JSON line: {"ok":N,"failed":N,"errors":[...]}.
const OpenAI = require('openai');
const Anthropic = require('@anthropic-ai/sdk');

const CLIENTS = 5;
const CALLS = Number(process.env.CALLS || 6);

async function call(kind, openai, anthropic) {
  switch (kind) {
    case 0: {
      const r = await openai.chat.completions.create({ model: 'fake-model', max_tokens: 200, messages: [{ role: 'user', content: 'hi' }] });
      return r.choices[0].message.content;
    }
    case 1: {
      const s = await openai.chat.completions.create({ model: 'fake-model', max_tokens: 200, stream: true, stream_options: { include_usage: true }, messages: [{ role: 'user', content: 'hi' }] });
      let text = '';
      for await (const c of s) text += (c.choices[0] && c.choices[0].delta.content) || '';
      return text;
    }
    case 2: {
      const s = await openai.responses.create({ model: 'fake-model', input: 'hi', max_output_tokens: 200, stream: true });
      let text = '';
      for await (const e of s) if (e.type === 'response.output_text.delta') text += e.delta;
      return text;
    }
    case 3: {
      const r = await anthropic.messages.create({ model: 'fake-model', max_tokens: 4000, messages: [{ role: 'user', content: 'hi' }] });
      return r.content[0].text;
    }
    default: {
      const s = anthropic.messages.stream({ model: 'fake-model', max_tokens: 4000, messages: [{ role: 'user', content: 'hi' }] });
      return await s.finalText();
    }
  }
}

async function client(i, res) {
  const openai = new OpenAI({ apiKey: 'sk-fake' });
  const anthropic = new Anthropic({ apiKey: 'sk-ant-fake' });
  for (let j = 0; j < CALLS; j++) {
    const kind = (i + j) % 5;
    try {
      const text = await call(kind, openai, anthropic);
      if (!text.includes(process.env.FAKE_ANSWER)) throw new Error(`kind ${kind}: answer ${JSON.stringify(text)}`);
      res.ok++;
    } catch (e) {
      res.failed++;
      res.errors.push(`kind ${kind}: ${e.status || ''} ${e.message}`.slice(0, 300));
    }
  }
}

(async () => {
  const res = { ok: 0, failed: 0, errors: [] };
  await Promise.all(Array.from({ length: CLIENTS }, (_, i) => client(i, res)));
  console.log(JSON.stringify(res));
})();
