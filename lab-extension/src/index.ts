/**
 * The workshop's help add-on for the attendee's JupyterLab: a side panel to raise a hand
 * ("I'm stuck", "I'm done") and to see the day at a glance (every exercise, passed, failing or
 * not tried, each a link to its place in the lab), and the instructor's news as JupyterLab
 * notifications the moment it happens (announcements, revealed solutions, "On my way", an
 * instructor looking at a notebook).
 *
 * The page talks only to its own Jupyter server (workshop_help, the server side), which talks
 * to the hub's console with the server's token. Text from the server is only ever set as text,
 * never as HTML.
 */
import { JupyterFrontEnd, JupyterFrontEndPlugin } from '@jupyterlab/application';
import { ICommandPalette, Notification } from '@jupyterlab/apputils';
import { URLExt } from '@jupyterlab/coreutils';
import { IDocumentManager } from '@jupyterlab/docmanager';
import { INotebookTracker, NotebookPanel } from '@jupyterlab/notebook';
import { ServerConnection } from '@jupyterlab/services';
import { Message } from '@lumino/messaging';
import { Widget } from '@lumino/widgets';

const PLUGIN_ID = 'workshop-help:plugin';
const LABS_FOLDER = 'labs';
// A failed call to the news is tried again after this long (plus a little of chance, so a
// room of laptops that lost the Wi-Fi together does not come back in step).
const RETRY_MS = 5000;
// The panel's grid is read again this often while the panel is open, and after each notice.
const GRID_REFRESH_MS = 30000;
const MAX_NOTE = 200;

/** An answer from the server side that is not a success: its message names the cause. */
class CallFailed extends Error {
  constructor(
    message: string,
    readonly status: number
  ) {
    super(message);
  }
}

async function call(path: string, init: RequestInit = {}): Promise<any> {
  const settings = ServerConnection.makeSettings();
  const url = URLExt.join(settings.baseUrl, 'workshop-help', path);
  const response = await ServerConnection.makeRequest(url, init, settings);
  const body = await response.json().catch(() => ({}));
  if (!response.ok) {
    throw new CallFailed(body.message || response.statusText, response.status);
  }
  return body;
}

function sleep(ms: number): Promise<void> {
  return new Promise(resolve => setTimeout(resolve, ms));
}

function element<K extends keyof HTMLElementTagNameMap>(
  tag: K,
  className: string,
  text = ''
): HTMLElementTagNameMap[K] {
  const node = document.createElement(tag);
  node.className = className;
  node.textContent = text;
  return node;
}

interface IHand {
  kind: 'stuck' | 'done';
  note: string;
  notebook: string;
  raised_at: number;
  taken_by: string | null;
  waited_seconds: number;
}

interface IExerciseState {
  lab: number;
  exercise: string;
  passed: boolean;
  reason: string;
}

interface IProgress {
  attendees: { [name: string]: IExerciseState[] };
  course: { [lab: string]: string[] };
}

interface INotice {
  seq: number;
  kind: 'announcement' | 'solution' | 'hand' | 'looking';
  text: string;
}

function clock(seconds: number): string {
  return new Date(seconds * 1000).toLocaleTimeString([], {
    hour: '2-digit',
    minute: '2-digit'
  });
}

/** What the hand says now, in one line. */
export function handStatus(hand: IHand | null): string {
  if (!hand) {
    return 'Your hand is down.';
  }
  const what = hand.kind === 'stuck' ? "I'm stuck" : "I'm done";
  const since = `Your hand is up ("${what}") since ${clock(hand.raised_at)}`;
  return hand.taken_by ? `${since}: ${hand.taken_by} is on the way.` : `${since}.`;
}

class HelpPanel extends Widget {
  private note = element('input', 'wh-note');
  private status = element('p', 'wh-hand-status', 'Your hand is down.');
  private grid = element('div', 'wh-grid');
  private message = element('p', 'wh-message');

  constructor(
    private tracker: INotebookTracker,
    private openExercise: (lab: number, exercise: string) => Promise<void>
  ) {
    super();
    this.id = 'workshop-help-panel';
    this.addClass('wh-panel');
    this.title.caption = 'Help and your day';
    this.title.label = 'Help';
    this.note.type = 'text';
    this.note.maxLength = MAX_NOTE;
    this.note.placeholder = 'What about? (optional, one line)';
    const buttons = element('div', 'wh-buttons');
    for (const [label, action] of [
      ["✋ I'm stuck", () => this.raise('stuck')],
      ["✅ I'm done", () => this.raise('done')],
      ['Lower my hand', () => this.lower()]
    ] as [string, () => Promise<void>][]) {
      const button = element('button', 'jp-Button wh-button', label);
      button.onclick = () => void action();
      buttons.appendChild(button);
    }
    this.node.append(
      element('h2', 'wh-title', 'Help in the room'),
      this.note,
      buttons,
      this.status,
      this.message,
      element('h2', 'wh-title', 'Your day'),
      this.grid
    );
  }

  /** Opening the panel shows the latest grid. */
  protected onAfterShow(message: Message): void {
    super.onAfterShow(message);
    void this.refreshGrid();
  }

  async raise(kind: 'stuck' | 'done'): Promise<void> {
    const current = this.tracker.currentWidget;
    let notebook = '';
    if (current) {
      // The instructor sees the notebook as last saved: save it first.
      await current.context.save();
      notebook = current.context.path;
    }
    await this.act(() =>
      call('hand', {
        method: 'POST',
        body: JSON.stringify({ kind, note: this.note.value, notebook })
      })
    );
  }

  async lower(): Promise<void> {
    await this.act(() => call('hand', { method: 'DELETE' }));
  }

  private async act(request: () => Promise<any>): Promise<void> {
    try {
      await request();
      this.message.textContent = '';
      await this.refreshHand();
    } catch (error) {
      this.message.textContent = (error as Error).message;
    }
  }

  async refreshHand(): Promise<void> {
    try {
      const answer = await call('hand');
      this.status.textContent = handStatus(answer.hand);
      this.node.dataset.hand = answer.hand ? answer.hand.kind : 'down';
    } catch (error) {
      this.status.textContent = (error as Error).message;
    }
  }

  async refreshGrid(): Promise<void> {
    let progress: IProgress;
    try {
      progress = await call('progress');
    } catch (error) {
      this.grid.textContent = (error as Error).message;
      return;
    }
    const mine = Object.values(progress.attendees)[0] || [];
    const states = new Map(mine.map(state => [`${state.lab}/${state.exercise}`, state]));
    const rows = Object.entries(progress.course).map(([lab, exercises]) => {
      const row = element('div', 'wh-row');
      row.appendChild(element('span', 'wh-lab', `Lab ${lab}`));
      for (const exercise of exercises) {
        const state = states.get(`${lab}/${exercise}`);
        const look = !state ? 'untried' : state.passed ? 'passed' : 'failing';
        const cell = element('button', `wh-cell wh-${look}`, state?.passed ? '✓' : '');
        cell.title = `Lab ${lab} · ${exercise}: ${
          look === 'failing' ? state!.reason : look === 'passed' ? 'passed' : 'not tried yet'
        }`;
        cell.dataset.exercise = exercise;
        cell.dataset.state = look;
        cell.onclick = () => void this.openExercise(Number(lab), exercise);
        row.appendChild(cell);
      }
      return row;
    });
    this.grid.replaceChildren(...rows);
  }
}

/** Tell each piece of news as a JupyterLab notification, as it arrives, until the page closes. */
async function listen(onNotice: (notice: INotice) => void): Promise<void> {
  let after: number | undefined;
  let boot: string | undefined;
  for (;;) {
    try {
      const query = after === undefined ? '' : `?after=${after}&boot=${boot}`;
      const news = await call(`notices${query}`);
      if (after !== undefined && news.boot === boot) {
        news.notices.forEach(onNotice);
      }
      after = news.seq;
      boot = news.boot;
    } catch (error) {
      if (error instanceof CallFailed && error.status === 503) {
        return; // no hub's console here: nothing will ever come
      }
      await sleep(RETRY_MS + Math.random() * RETRY_MS);
    }
  }
}

function notify(notice: INotice): void {
  const sticky = notice.kind === 'hand' || notice.kind === 'looking';
  const type = notice.kind === 'announcement' ? 'warning' : 'info';
  Notification.emit(notice.text, type, { autoClose: sticky ? false : 15000 });
}

const plugin: JupyterFrontEndPlugin<void> = {
  id: PLUGIN_ID,
  description: 'Raise a hand, hear the instructor, see your day.',
  autoStart: true,
  requires: [INotebookTracker, IDocumentManager],
  optional: [ICommandPalette],
  activate: (
    app: JupyterFrontEnd,
    tracker: INotebookTracker,
    documents: IDocumentManager,
    palette: ICommandPalette | null
  ) => {
    const openExercise = async (lab: number, exercise: string): Promise<void> => {
      const folder = await app.serviceManager.contents.get(LABS_FOLDER, { content: true });
      const pattern = new RegExp(`^0${lab}_[^.]+\\.ipynb$`);
      const file = folder.content.find((item: any) => pattern.test(item.name));
      if (!file) {
        Notification.warning(`Lab ${lab} is not in your ${LABS_FOLDER} folder.`);
        return;
      }
      const panel = documents.openOrReveal(file.path) as NotebookPanel | undefined;
      if (!panel) {
        return;
      }
      await panel.context.ready;
      const cells = panel.content.widgets;
      // The check cell names the exercise; the exercise itself is two cells above it.
      const check = cells.findIndex(cell =>
        cell.model.sharedModel.getSource().includes(`check_${exercise}(`)
      );
      if (check >= 0) {
        const index = Math.max(0, check - 2);
        panel.content.activeCellIndex = index;
        await panel.content.scrollToCell(cells[index]);
      }
    };
    const panel = new HelpPanel(tracker, openExercise);
    app.shell.add(panel, 'left', { rank: 600 });
    const refresh = () => {
      void panel.refreshHand();
      if (panel.isVisible) {
        void panel.refreshGrid();
      }
    };
    setInterval(() => panel.isVisible && void panel.refreshGrid(), GRID_REFRESH_MS);
    const commands: [string, string, () => Promise<void>][] = [
      ['workshop-help:stuck', "Raise my hand: I'm stuck", () => panel.raise('stuck')],
      ['workshop-help:done', "Raise my hand: I'm done", () => panel.raise('done')],
      ['workshop-help:lower', 'Lower my hand', () => panel.lower()]
    ];
    for (const [id, label, execute] of commands) {
      app.commands.addCommand(id, { label, execute });
      palette?.addItem({ command: id, category: 'Workshop' });
    }
    app.restored.then(() => {
      refresh();
      void listen(notice => {
        notify(notice);
        refresh();
      });
    });
  }
};

export default plugin;
