// Entry point: takes a token handed over in the URL, applies the saved theme, renders the app.

import { render } from 'preact';
import { App } from './components/App';
import { adoptTokenFromUrl } from './session';
import { applyTheme, savedTheme } from './theme';
import './styles.css';

const handOffError = adoptTokenFromUrl();
applyTheme(savedTheme());
render(<App handOffError={handOffError} />, document.getElementById('app')!);
